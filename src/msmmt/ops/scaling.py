"""Resizing and min-max scaling to 8 bits, shared by the texture and motion images."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["minmax_uint8", "resize_square"]


def resize_square(image: np.ndarray, size: int | None) -> np.ndarray:
    """``image`` (H, W[, C]) resized to ``size x size`` (area averaging when shrinking);
    unchanged when ``size`` is None or already its shape."""
    if size is None or image.shape[:2] == (size, size):
        return image
    shrink = size < min(image.shape[:2])
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation).reshape(
        size, size, *image.shape[2:]
    )


def minmax_uint8(x: np.ndarray, per_channel: bool = False) -> np.ndarray:
    """``round(255 (x - min) / (max - min))`` as uint8, over the whole array or per channel.

    Min and max are taken over all pixels (and channels unless ``per_channel``, which
    scales each slice ``x[..., c]`` alone). A constant slice maps to 128. Negating a
    slice maps ``s`` to ``255 - s`` (up to a rounding tie), which the training flip
    of the flow's u channel relies on.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim - 1)) if per_channel else None
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    flat = span <= 0
    scaled = np.where(flat, 127.5, 255.0 * (x - lo) / np.where(flat, 1.0, span))
    return np.rint(scaled).astype(np.uint8)
