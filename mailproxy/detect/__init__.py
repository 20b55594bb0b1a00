"""Tracking detection: known trackers, user filter lists, heuristics."""
