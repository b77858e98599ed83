"""Reading an image file as 8-bit RGB: the modality images of the cache and of
precomputed sets (any of OpenCV's formats)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from msmmt.core.records import DatasetError

__all__ = ["read_rgb"]


def read_rgb(path: str | Path) -> np.ndarray:
    """``path`` decoded to uint8 RGB (H, W, 3), or (H, W) for a greyscale file.

    16-bit files are scaled by 1/257 (65535 -> 255), an alpha channel is dropped.
    A missing, unreadable or corrupt file is a :class:`DatasetError` naming it.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: not a readable image (corrupt or unsupported format)")
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[..., :3]
        elif img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img
