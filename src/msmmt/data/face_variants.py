"""Hard variants of a face photograph, with their true landmarks, for the face cascade.

Each variant maps ``(image, landmarks)`` -- an (H, W, 3) uint8 RGB image and its (68, 2)
landmarks -- to the transformed image and the landmarks moved with it, so a detector's
landmark error can be measured against the truth. They stand for the faces dlib's HOG
detector misses in practice (:mod:`msmmt.ops.face`): faces that fill the frame (tight
crops), small, dark, low-contrast, tilted faces, and faces with glasses. Used by the
tests and by ``benchmarks/bench_face.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["VARIANTS", "dark", "glasses", "low_contrast", "shrunk", "tight_crop", "tilted"]

Variant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def tight_crop(image: np.ndarray, landmarks: np.ndarray, margin: float = -0.1, size: int = 224):
    """The landmarks' box grown by ``margin`` of its size on each side (negative: cut into
    the face), resized to ``size`` x ``size``: a face that fills the frame."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    grow = margin * (hi - lo)
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int)
    crop = image[max(y0, 0) : y1, max(x0, 0) : x1]
    scale = np.array([size / crop.shape[1], size / crop.shape[0]])
    out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
    return out, (landmarks - [max(x0, 0), max(y0, 0)]) * scale


def shrunk(image: np.ndarray, landmarks: np.ndarray, eye_px: float = 14.0):
    """The image scaled so that the inner eye corners are ``eye_px`` apart (a small face)."""
    scale = eye_px / float(np.linalg.norm(landmarks[42] - landmarks[39]))
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return out, landmarks * scale


def dark(image: np.ndarray, landmarks: np.ndarray, gain: float = 0.04):
    """Grey levels times ``gain`` (0.04 leaves about 10 levels)."""
    return (image.astype(np.float32) * gain).astype(np.uint8), landmarks.copy()


def low_contrast(image: np.ndarray, landmarks: np.ndarray, gain: float = 0.04):
    """Grey levels squeezed towards 128 by ``gain``."""
    out = 128 + (image.astype(np.float32) - 128) * gain
    return out.astype(np.uint8), landmarks.copy()


def tilted(image: np.ndarray, landmarks: np.ndarray, degrees: float = 50.0):
    """The image rotated by ``degrees`` about the face's centre."""
    centre = landmarks.mean(0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out, landmarks @ matrix[:, :2].T + matrix[:, 2]


def glasses(image: np.ndarray, landmarks: np.ndarray):
    """Dark-rimmed glasses drawn over the eyes (rims round landmarks 36-41 and 42-47, a bridge)."""
    out = image.copy()
    eye = float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))
    thick = max(1, int(round(0.04 * eye)))
    for group in (slice(36, 42), slice(42, 48)):
        centre = landmarks[group].mean(0)
        axes = (int(0.42 * eye), int(0.3 * eye))
        angle = float(np.degrees(np.arctan2(*(landmarks[45] - landmarks[36])[::-1])))
        cv2.ellipse(out, tuple(int(v) for v in centre), axes, angle, 0, 360, (20, 20, 20), thick)
    a = landmarks[39] + [0.1 * eye, -0.05 * eye]
    b = landmarks[42] - [0.1 * eye, 0.05 * eye]
    cv2.line(out, tuple(int(v) for v in a), tuple(int(v) for v in b), (20, 20, 20), thick)
    return out, landmarks.copy()


VARIANTS: dict[str, Variant] = {
    "as-is": lambda image, landmarks: (image, landmarks),
    "tight-crop": tight_crop,
    "shrunk": shrunk,
    "dark": dark,
    "low-contrast": low_contrast,
    "tilted": tilted,
    "glasses": glasses,
}
"""Every variant with its default strength, by name."""
