"""Dataset readers and synthetic clips."""
