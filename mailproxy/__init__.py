"""mailproxy: email-tracking protection.

Layers, with dependencies pointing one way only (top may import bottom, never the reverse):

    cli, imap (I/O), http (mitmproxy glue)      -- user-facing shells
    policy, analysis                            -- what to do about a finding
    detect, rewrite, html                       -- pure analysis and length-preserving editing
    model, errors                               -- pure data
"""

__version__ = "0.1.0"
