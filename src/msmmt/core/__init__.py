"""Core of msmmt: sample records, label maps, the key-frame rule, image reading, file-safe
names, atomic file writing (imports nothing above it)."""
