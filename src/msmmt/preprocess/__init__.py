"""Clip preprocessing: one clip (clip), the per-stage cache (cache), whole datasets (batch)."""
