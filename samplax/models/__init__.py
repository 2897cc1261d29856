"""Model library (filled below)."""
