"""Leak-free evaluation: metrics, LOSO and grouped K-fold protocols, the fold runner, reports."""
