"""Leak-free evaluation: LOSO and grouped K-fold protocols, the fold runner (handed its
fit_predict), the MSMMT executor, and the report (results, figures, Markdown)."""
