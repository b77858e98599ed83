"""Face alignment of a clip: one similarity transform from the first frame's eyes.

As in the paper (section 4.2): dlib's 68 landmarks are found on the first frame
(or, if it shows no face, on the next ones), a similarity transform is computed
from the two inner eye corners (landmarks 39 and 42, 0-based), the same transform
is applied to every frame -- so the tiny motions between frames are kept, not
"aligned away" -- and the face is cropped from the aligned landmarks' box.

With ``S = face_size``, ``e = eye_distance`` and ``m = face_margin``, the output is
one warp ``p' = s R p + t`` (no second resampling for the crop) where

- ``R`` turns the segment 39 -> 42 horizontal and ``s`` makes its length ``e S``;
- ``t`` puts the eye corners at ``x = S/2 -+ e S / 2`` and the top of the aligned
  landmarks' box (the brows) at ``y = m h``, ``h`` the box's height: the square crop
  starts a margin above the brows.

So the inner eye corners land on fixed columns and one row per clip (the row
depends on the subject's forehead-to-eye proportion). ``align=False`` takes frames
that are already face crops and only resizes them to ``S x S``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.records import DatasetError
from msmmt.ops.landmarks import LEFT_INNER_EYE, RIGHT_INNER_EYE, detect_landmarks

__all__ = [
    "AlignedFaces",
    "align_faces",
    "alignment_matrix",
    "face_landmarks",
    "find_landmarks",
    "warp_frames",
]

LandmarksFn = Callable[[np.ndarray], "np.ndarray | None"]


def face_landmarks(image: np.ndarray) -> np.ndarray | None:
    """dlib's 68 landmarks, searching the image as is first (faces of 80 px and more,
    4x faster) and upsampled twice only when that finds no face."""
    found = detect_landmarks(image, upsample=0)
    return found if found is not None else detect_landmarks(image, upsample=1)


@dataclass(frozen=True)
class AlignedFaces:
    frames: np.ndarray
    """(T, S, S, 3) uint8 aligned face crops."""
    landmarks: np.ndarray | None
    """(68, 2) landmarks of the detection frame in output (x, y) pixels; None without alignment."""
    matrix: np.ndarray
    """(2, 3) similarity transform, source pixels -> output pixels."""
    eye_targets: np.ndarray | None
    """(2, 2) where landmarks 39 and 42 land in the output; None without alignment."""
    detected_frame: int | None
    """Index of the frame the landmarks came from; None without alignment."""


def find_landmarks(
    frames: np.ndarray, tries: int, landmarks_fn: LandmarksFn = face_landmarks, clip: str = "clip"
) -> tuple[int, np.ndarray]:
    """Landmarks of the first of ``frames[:tries]`` that shows a face: (frame index, (68, 2)).

    Raises DatasetError naming ``clip`` when none does.
    """
    n = min(tries, len(frames))
    for i in range(n):
        found = landmarks_fn(frames[i])
        if found is not None:
            return i, np.asarray(found, dtype=np.float64)
    raise DatasetError(f"{clip}: no face found by dlib in the first {n} frame(s)")


def alignment_matrix(
    landmarks: np.ndarray, size: int, eye_distance: float, margin: float
) -> np.ndarray:
    """The (2, 3) similarity ``p' = s R p + t`` of the module docstring, from 68 landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64)
    left, right = pts[LEFT_INNER_EYE], pts[RIGHT_INNER_EYE]
    dx, dy = right - left
    dist = float(np.hypot(dx, dy))
    if dist < 1e-6:
        raise ValueError("inner eye corners coincide; cannot align")
    scale = eye_distance * size / dist
    cos, sin = scale * dx / dist, scale * dy / dist
    rot = np.array([[cos, sin], [-sin, cos]])  # rotates (dx, dy) onto (scale * dist, 0)
    turned = pts @ rot.T
    mid = (turned[LEFT_INNER_EYE] + turned[RIGHT_INNER_EYE]) / 2
    top, height = turned[:, 1].min(), np.ptp(turned[:, 1])
    shift = np.array([size / 2 - mid[0], margin * height - top])
    return np.hstack([rot, shift[:, None]])


def warp_frames(frames: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply one (2, 3) affine ``matrix`` to every frame of (T, H, W, C): (T, size, size, C)."""
    out = np.empty((len(frames), size, size, frames.shape[-1]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        out[i] = cv2.warpAffine(
            frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).reshape(size, size, -1)
    return out


def _transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_faces(
    frames: np.ndarray,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn = face_landmarks,
    clip: str = "clip",
) -> AlignedFaces:
    """Aligned ``face_size`` square crops of a clip's frames (T, H, W, 3) uint8.

    The landmarks come from the first frame with a face among the first
    ``cfg.face_search_frames``; the one transform is applied to every frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{clip}: expected frames of shape (T, H, W, 3), got {frames.shape}")
    size = cfg.face_size
    if not cfg.align:
        h, w = frames.shape[1:3]
        matrix = np.array([[size / w, 0.0, 0.0], [0.0, size / h, 0.0]])
        resized = np.stack(
            [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
        )
        return AlignedFaces(resized, None, matrix, None, None)
    index, landmarks = find_landmarks(frames, cfg.face_search_frames, landmarks_fn, clip)
    matrix = alignment_matrix(landmarks, size, cfg.eye_distance, cfg.face_margin)
    aligned = _transform(landmarks, matrix)
    eyes = aligned[[LEFT_INNER_EYE, RIGHT_INNER_EYE]]
    return AlignedFaces(warp_frames(frames, matrix, size), aligned, matrix, eyes, index)
