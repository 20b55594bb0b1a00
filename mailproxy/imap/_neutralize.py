"""The neutralizer the filter uses for bodies the engine cannot rewrite; it lives in
``mailproxy.rewrite.neutralize`` since the engine's last resort uses it too."""

from mailproxy.rewrite.neutralize import StreamNeutralizer, neutralize_section

__all__ = ["StreamNeutralizer", "neutralize_section"]
