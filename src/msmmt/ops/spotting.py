"""Micro-expression spotting in a long video: a motion signal, its peaks, their intervals.

Works on small grey face crops ``F_t`` (``size`` px, the face box of the first
frame, :func:`crop_face`) and the 68 landmarks in crop pixels. See
``docs/METHOD.md``, "Spotting".

1. Residual flow (:func:`residual_flow`): dense optical flow (OpenCV's DIS, fast
   preset) from ``F_a`` to ``F_b``, minus the affine motion fitted by least squares
   to it over the face without the eyes (:func:`face_regions`): the head's own motion
   (shift, rotation, scale) is removed, what is left is the face's deformation, read
   in the brow, nose and mouth regions (not the eyes: blinks are not expressions).
2. Spotting signal (:func:`spotting_signal`): with ``d-`` the residual flow from
   ``F_t`` to ``F_{t-k}`` and ``d+`` from ``F_t`` to ``F_{t+k}``,
   ``S(t) = sqrt(mean_{p in R} max(0, d-(p) . d+(p)))``. At the apex of an expression
   shorter than ``2k`` frames both neighbours are neutral, so both flows point back the
   same way and ``S`` is about the displacement. A ramp (the onset or the offset of a
   long expression, a head turn) moves the two neighbours to opposite sides
   (``d- . d+ < 0``), the plateau of a long expression differs from neither: both add
   nothing. Flow, unlike grey levels, stays monotone under large motion, so a long
   expression's large displacement does not read as a bump either.
3. Peaks (:func:`signal_peaks`): local maxima of the smoothed signal whose robust
   z-score ``(S - median) / (1.4826 MAD)`` reaches ``threshold``, at least
   ``distance`` frames apart.
4. Interval (:func:`peak_interval`): around a peak, the deviation of each frame from
   the neutral frames ``K`` before and after, ``D(t) = min(|r(F_{a-K} -> F_t)|,
   |r(F_{a+K} -> F_t)|)`` (mean residual flow magnitude), read by
   :func:`msmmt.ops.motion_signal.key_frames`: apex at its peak, onset / offset where
   it crosses ``fraction`` of the rise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from msmmt.ops.motion_signal import key_frames, region_mask

__all__ = [
    "FaceRegions",
    "crop_box",
    "crop_face",
    "face_regions",
    "peak_interval",
    "residual_flow",
    "robust_z",
    "signal_peaks",
    "spotting_signal",
]


@lru_cache(maxsize=1)
def _dis():
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


def crop_box(landmarks: np.ndarray, scale: float = 1.2) -> tuple[int, int, int]:
    """Square box ``(x0, y0, side)`` centred on the landmarks' box, ``scale`` times its longer side."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    side = int(round(scale * float((hi - lo).max())))
    x0, y0 = np.round((lo + hi) / 2 - side / 2).astype(int)
    return int(x0), int(y0), side


def crop_face(frame: np.ndarray, box: tuple[float, float, int], size: int) -> np.ndarray:
    """Grey (size, size) uint8 crop of ``box`` from an RGB or grey frame (edges replicated).

    A box at a fractional position is cropped at the nearest whole pixel and the crop
    shifted by the rest (bilinear), so a box that moves smoothly gives crops that do too.
    """
    x, y, side = box
    x0, y0 = int(round(x)), int(round(y))
    crop = _crop_whole(frame, (x0, y0, side), size)
    if x == x0 and y == y0:
        return crop
    scale = size / side
    shift = np.float32([[1, 0, (x0 - x) * scale], [0, 1, (y0 - y) * scale]])
    return cv2.warpAffine(crop, shift, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _crop_whole(frame: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """:func:`crop_face` of a box at whole pixels."""
    x0, y0, side = box
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = grey.shape
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = grey[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def _design(mask: np.ndarray) -> np.ndarray:
    """(N, 3) rows ``(1, x, y)`` of the pixels of ``mask``: an affine motion is ``design @ coef``."""
    y, x = np.nonzero(mask)
    return np.stack([np.ones(len(x)), x, y], 1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class FaceRegions:
    """Where a crop's motion is read (``expression``) and where the head's is fitted (``head``)."""

    expression: np.ndarray
    """(S, S) bool: brows, nose and mouth (:func:`msmmt.ops.motion_signal.region_mask`), no eyes."""
    head: np.ndarray
    """(S, S) bool: the face (hull of the jaw line and brows) without the eyes."""
    head_pinv: np.ndarray
    """(3, N_head) pseudo-inverse of the head pixels' affine design: least-squares fit."""
    expression_design: np.ndarray
    """(N_expression, 3) affine design of the expression pixels."""


def face_regions(
    landmarks: np.ndarray,
    size: int,
    radius: float = 0.1,
    eye_radius: float = 0.12,
    head_motion: bool = True,
) -> FaceRegions:
    """Regions of a ``size`` px crop from its (68, 2) landmarks (crop pixels); radii are
    fractions of ``size``. ``head_motion=False`` fits no head motion (an ablation: the
    residual flow is then the whole flow)."""
    eyes = np.zeros((size, size), np.uint8)
    for x, y in landmarks[36:48]:
        cv2.circle(eyes, (int(round(x)), int(round(y))), int(round(eye_radius * size)), 1, -1)
    hull = np.zeros((size, size), np.uint8)
    outline = cv2.convexHull(landmarks[:27].astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(hull, outline, 1)
    no_eyes = eyes == 0
    expression = region_mask(landmarks, (size, size), radius * size) & no_eyes
    head = hull.astype(bool) & no_eyes
    pinv = np.linalg.pinv(_design(head)) if head_motion else np.zeros((3, int(head.sum())), np.float32)
    return FaceRegions(expression, head, pinv, _design(expression))


def residual_flow(a: np.ndarray, b: np.ndarray, regions: FaceRegions) -> np.ndarray:
    """(N, 2) flow from crop ``a`` to crop ``b`` in ``regions.expression``, minus the
    affine motion least-squares fitted to it over ``regions.head`` (module docstring)."""
    flow = _dis().calc(a, b, None)
    coef = regions.head_pinv @ flow[regions.head]  # (3, 2): the affine motion of u and v
    return flow[regions.expression] - regions.expression_design @ coef


def spotting_signal(crops: np.ndarray, k: int, regions: FaceRegions) -> np.ndarray:
    """``S(t)`` of the module docstring for crops (T, S, S) uint8; 0 within ``k`` of the ends."""
    out = np.zeros(len(crops))
    for t in range(k, len(crops) - k):
        before = residual_flow(crops[t], crops[t - k], regions)
        after = residual_flow(crops[t], crops[t + k], regions)
        out[t] = np.sqrt(np.maximum((before * after).sum(1), 0.0).mean())
    return out


def robust_z(signal: np.ndarray) -> np.ndarray:
    """``(s - median) / (1.4826 MAD)``: the signal in units of its noise (most frames are neutral)."""
    median = float(np.median(signal))
    mad = 1.4826 * float(np.median(np.abs(signal - median)))
    return (signal - median) / max(mad, 1e-9)


def signal_peaks(z: np.ndarray, threshold: float, distance: int) -> np.ndarray:
    """Positions of the local maxima of ``z`` that reach ``threshold``, highest first kept
    when two are closer than ``distance`` frames; in time order."""
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(z, height=threshold, distance=max(1, distance))
    return peaks


def _deviation(crops: np.ndarray, anchor: int, frames: range, regions: FaceRegions) -> np.ndarray:
    return np.array(
        [np.linalg.norm(residual_flow(crops[anchor], crops[t], regions), axis=1).mean() for t in frames]
    )


def peak_interval(
    crops: np.ndarray, peak: int, window: int, regions: FaceRegions, fraction: float = 0.15
) -> tuple[int, int, int]:
    """Onset, apex and offset (positions in ``crops``) of the expression around ``peak``
    (module docstring, step 4), searched within ``window`` frames on each side."""
    first, last = max(0, peak - window), min(len(crops) - 1, peak + window)
    frames = range(first, last + 1)
    deviation = np.minimum(
        _deviation(crops, first, frames, regions), _deviation(crops, last, frames, regions)
    )
    found = key_frames(deviation, fraction=fraction, width=1)
    return first + found.onset, first + found.apex, first + found.offset

