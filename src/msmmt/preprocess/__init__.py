"""Clip preprocessing: face alignment, magnification, dynamic image, flow and strain, cache."""
