"""Recommendation rules (filled by the recommendations work)."""
