"""Leak-free evaluation: LOSO and grouped K-fold protocols, the fold runner, reports."""
