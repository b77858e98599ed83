"""Second landmark pass: refit dlib's 68 points in a canonical, contrast-normalised face crop.

The first fit (:func:`msmmt.ops.face.face_landmarks`) depends on the box of whichever
detector fired (HOG, HOG upsampled or on the equalised frame, the padded face crop, the
CNN): each draws its box differently around the face, and dlib's shape predictor, a
cascade of regression trees started from its mean shape placed in that box, is only as
good as the box resembles the HOG boxes it was trained with. It also sees the frame's
contrast (pixel-difference features; a dark frame leaves it a few grey levels) and the
frame's resolution (it returns whole pixels).

:func:`refine_landmarks` removes the three: with ``P`` the first fit and ``Q`` the
reference face's landmarks in units of its HOG box (skimage's astronaut; the box
``[0, 1]^2``), the similarity ``M = argmin_{s R, t} sum_i |s R P_i + t - c (Q_i + m)|^2``
over the inner points ``i`` = 17..67 (brows, nose, eyes, mouth: not the jaw, which a
tight crop cuts) maps the face into a ``c (1 + 2 m)`` px square crop (``c`` =
:data:`BOX_PX`, ``m`` = :data:`MARGIN`) where its HOG-like box is ``[c m, c (1 + m)]^2``
whatever detector found it, upright, at about 2-4 times the resolution of a
typical face. The crop's grey levels are normalised inside that box,
``g' = 128 + 50 (g - mean) / std``, the 68 points are fitted in the box and mapped back
with ``M^-1`` (sub-pixel). Measured in ``benchmarks/bench_face.py`` (inner-eye-corner
error per condition, with and without this pass); see ``docs/METHOD.md``, "Face
alignment".
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from msmmt.ops.landmarks import fit_landmarks, hog_boxes, to_uint8_gray

__all__ = ["BOX_PX", "MARGIN", "canonical_similarity", "reference_shape", "refine_landmarks"]

BOX_PX = 200
"""Side (pixels) of the canonical face box the refit works in."""
MARGIN = 0.5
"""Context around the canonical box in the crop, as a fraction of its side on each side."""
INNER = np.arange(17, 68)
"""Landmarks the canonical similarity is fitted on: brows, nose, eyes, mouth (not the jaw)."""
GREY_MEAN, GREY_STD = 128.0, 50.0
"""Mean and standard deviation the crop's grey levels are given inside the face box."""


@lru_cache(maxsize=1)
def reference_shape() -> np.ndarray:
    """(68, 2) landmarks of skimage's astronaut in units of dlib's HOG box around her face
    (the box is ``[0, 1]^2``): where the shape predictor expects a face in its box."""
    from skimage.data import astronaut

    gray = to_uint8_gray(astronaut())
    box = max(hog_boxes(gray, 1), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    points = fit_landmarks(gray, box)
    shape = (points - [box[0], box[1]]) / [box[2] - box[0], box[3] - box[1]]
    shape.setflags(write=False)
    return shape


def canonical_similarity(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 3) similarity ``[s R | t]`` (no reflection) minimising
    ``sum_i |s R points_i + t - target_i|^2`` (Umeyama's least squares, without reflection)."""
    mu_p, mu_t = points.mean(0), target.mean(0)
    p, t = points - mu_p, target - mu_t
    a = float(np.sum(p * t))
    b = float(np.sum(p[:, 0] * t[:, 1] - p[:, 1] * t[:, 0]))
    norm = float(np.sum(p * p))
    rot = np.array([[a, -b], [b, a]]) / norm
    return np.hstack([rot, (mu_t - rot @ mu_p)[:, None]])


def _normalise(crop: np.ndarray, box: slice) -> np.ndarray:
    """Grey levels of ``crop`` given mean GREY_MEAN and std GREY_STD inside ``crop[box, box]``."""
    inside = crop[box, box].astype(np.float32)
    scale = GREY_STD / max(float(inside.std()), 1e-3)
    out = (crop.astype(np.float32) - float(inside.mean())) * scale + GREY_MEAN
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def refine_landmarks(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """68 ``points`` (x, y) of a face in ``image`` (grey or RGB) refitted in the canonical
    crop (module docstring) -> (68, 2) float, in ``image``'s pixels."""
    gray = to_uint8_gray(image)
    side = int(round(BOX_PX * (1 + 2 * MARGIN)))
    lo = BOX_PX * MARGIN
    target = BOX_PX * reference_shape() + lo
    matrix = canonical_similarity(np.asarray(points, np.float64)[INNER], target[INNER])
    crop = cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    crop = _normalise(crop, slice(int(lo), int(lo + BOX_PX)))
    fitted = fit_landmarks(crop, (lo, lo, lo + BOX_PX, lo + BOX_PX))
    back = cv2.invertAffineTransform(matrix)
    return fitted @ back[:, :2].T + back[:, 2]
