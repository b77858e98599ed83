"""Core of msmmt: sample records, label maps, atomic file writing (imports nothing above it)."""
