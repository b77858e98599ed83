"""Face alignment of a clip: one similarity transform from the first frame's eyes.

As in the paper (section 4.3): dlib's 68 landmarks are found on the first frame
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

Finding the face is a cascade (:func:`face_landmarks`, steps in
``PreprocessConfig.face_cascade``), tried in order until one finds a face; the step
that did is reported (``AlignedFaces.face_step``, and ``face_step`` in a clip's info):

1. ``hog``: dlib's frontal HOG detector on the frame (faces of about 80 px and more);
2. ``hog-upsampled``: the same on the frame upsampled twice (small faces, 40 px and more);
3. ``hog-equalized``: the same (upsampled) on the histogram-equalised grey frame
   (dark and low-contrast faces; the landmarks are fitted on the equalised frame too);
4. ``face-crop``: the frame is itself a face crop (the face fills it, leaving the
   detector no context): HOG, at a threshold lowered by 0.5, on the frame padded by
   a quarter of its size with its mean grey, keeping a face box that covers at least
   :data:`CROP_COVER` of the frame;
5. ``cnn``: dlib's CNN (MMOD) face detector (the slowest: about 0.7 s at 224 x 224,
   4 s at 512 x 512 on one core). It also finds tilted faces, where the shape predictor
   (trained on level faces) often fits a level-looking face: so the frame is turned about
   the box's centre by each angle of :data:`LEVEL_SEARCH_DEG` and the landmarks are fitted
   where HOG (an upright-face detector) scores the face in the box highest
   (:func:`_levelled_fit`; on faces tilted by 50 degrees, fits off by more than 8 px at
   224 px drop from 16 of 38 to 1).

In every step the 68 landmarks are fitted by dlib's shape predictor in the
best-scoring box (not the largest: on skimage's astronaut, HOG without upsampling
also finds a weak, larger "face" on the suit), then refitted upright
(:func:`upright_landmarks`): dlib's predictor is trained on roughly level faces, so a
face is turned level, refitted and turned back (the refit is kept when it finds the face
tilted by more than 10 degrees). Last, whatever step found the face, the 68 points are
refitted once more in a canonical crop placed by the first fit, with normalised contrast
(:mod:`msmmt.ops.landmark_refine`), so they no longer depend on which detector fired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.records import DatasetError
from msmmt.ops.landmark_refine import refine_landmarks
from msmmt.ops.landmarks import (
    LEFT_INNER_EYE,
    RIGHT_INNER_EYE,
    cnn_boxes,
    fit_landmarks,
    hog_boxes,
    to_uint8_gray,
)

__all__ = [
    "CASCADE",
    "AlignedFaces",
    "FaceDetection",
    "align_faces",
    "alignment_matrix",
    "face_landmarks",
    "find_landmarks",
    "follow_face",
    "upright_landmarks",
    "warp_frames",
]

CASCADE = ("hog", "hog-upsampled", "hog-equalized", "face-crop", "cnn")
"""The detection steps, in the order :func:`face_landmarks` tries them by default."""
CROP_COVER = 0.4
"""``face-crop`` step: least fraction of the frame's area the face box must cover."""
CROP_PAD = 0.25
"""``face-crop`` step: border added on each side, as a fraction of the frame's longer side."""
LEVEL_SEARCH_DEG = (-60, -45, -30, -15, 0, 15, 30, 45, 60)
"""``cnn`` step: the turns of the frame searched for the one where HOG sees the face upright."""
CROP_THRESHOLD = -0.5
"""``face-crop`` step: shift of HOG's decision threshold (on skimage's astronaut cropped 10-20 %
into the face and padded, the face scores -0.06 to 0.9; non-faces -1.1 and below)."""


@dataclass(frozen=True)
class FaceDetection:
    """68 landmarks (x, y) of a face and the cascade step that found it."""

    landmarks: np.ndarray
    step: str


LandmarksFn = Callable[[np.ndarray], "FaceDetection | np.ndarray | None"]


def _crop_box(gray: np.ndarray) -> tuple[np.ndarray, tuple] | None:
    """``face-crop`` step: the padded frame and its face box covering most of the frame."""
    h, w = gray.shape
    pad = int(round(CROP_PAD * max(h, w)))
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=int(gray.mean()))
    for box in hog_boxes(padded, 0, CROP_THRESHOLD):
        left, top = max(box[0] - pad, 0), max(box[1] - pad, 0)
        right, bottom = min(box[2] - pad, w), min(box[3] - pad, h)
        if (right - left) * (bottom - top) >= CROP_COVER * h * w:
            return padded, box
    return None


def _step_fit(gray: np.ndarray, step: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(image searched, landmarks) of one cascade step in ``gray`` (uint8), or None."""
    if step == "face-crop":
        found = _crop_box(gray)
        if found is None:
            return None
        padded, box = found
        pad = (padded.shape[0] - gray.shape[0]) // 2
        return gray, fit_landmarks(padded, box) - pad
    if step == "hog-equalized":
        gray = cv2.equalizeHist(gray)
    if step == "cnn":
        boxes = cnn_boxes(gray)
        return (gray, _levelled_fit(gray, boxes[0])) if boxes else None
    boxes = hog_boxes(gray, 0 if step == "hog" else 1)
    return (gray, fit_landmarks(gray, boxes[0])) if boxes else None


def _levelled_fit(gray: np.ndarray, box: tuple) -> np.ndarray:
    """Landmarks of the face in ``box`` fitted on the frame turned by the angle of
    :data:`LEVEL_SEARCH_DEG` (about the box's centre) where HOG, at a threshold lowered by
    0.5 and upsampled for boxes under 120 px, finds a face centred in the box with the best
    score; turned back. In the box itself when HOG finds it at no angle."""
    left, top, right, bottom = box[:4]
    centre = ((left + right) / 2, (top + bottom) / 2)
    side = max(right - left, bottom - top)
    best = None
    for angle in LEVEL_SEARCH_DEG:
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(gray, matrix, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
        for found in hog_boxes(turned, 1 if side < 120 else 0, CROP_THRESHOLD):
            middle = np.array([found[0] + found[2], found[1] + found[3]]) / 2
            if np.abs(middle - centre).max() < side / 2:
                if best is None or found[4] > best[0]:
                    best = (found[4], found, matrix, turned)
                break
    if best is None:
        return fit_landmarks(gray, box)
    _, found, matrix, turned = best
    return _transform(fit_landmarks(turned, found), cv2.invertAffineTransform(matrix))


def _landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """The detector-like box of 68 landmarks: their box, moved up by 5-8 % of its height
    (where dlib's HOG box lies relative to the landmarks on skimage's astronaut)."""
    (left, top), (right, bottom) = points.min(0), points.max(0)
    height = bottom - top
    return left, top - 0.05 * height, right, bottom - 0.08 * height


def _tilt(points: np.ndarray) -> float:
    """Angle (degrees) of the inner eye corners' line 39 -> 42 against the horizontal."""
    dx, dy = points[RIGHT_INNER_EYE] - points[LEFT_INNER_EYE]
    return float(np.degrees(np.arctan2(dy, dx)))


def upright_landmarks(
    gray: np.ndarray,
    points: np.ndarray,
    rounds: int = 4,
    tolerance_deg: float = 1.0,
    keep_deg: float = 10.0,
) -> np.ndarray:
    """Refit 68 ``points`` of a tilted face in ``gray`` (uint8) on the levelled face.

    While the inner eye corners' line 39 -> 42 is tilted by ``a`` with
    ``|a| > tolerance_deg`` (at most ``rounds`` times): rotate the frame by ``a``
    about the landmarks' centre, fit the landmarks in their box there
    (:func:`_landmark_box`) and rotate them back. The refit is kept when the face it
    finds is tilted by more than ``keep_deg``; a first fit on a strongly tilted face
    often looks level, which is why the test is on the refit (on faces tilted by 50
    degrees the median eye-corner error at 224 px drops from 57 px to 2.5 px). For
    faces closer to level the first fit is kept: refitting them measured slightly
    worse (benchmarks/bench_face.py).
    """
    h, w = gray.shape
    first = points
    for _ in range(rounds):
        angle = _tilt(points)
        if abs(angle) <= tolerance_deg:
            break
        centre = points.mean(0)
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
        level = cv2.warpAffine(gray, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        fitted = fit_landmarks(level, _landmark_box(_transform(points, matrix)))
        points = _transform(fitted, cv2.invertAffineTransform(matrix))
    return points if abs(_tilt(points)) > keep_deg else first


def face_landmarks(
    image: np.ndarray, steps: Sequence[str] = CASCADE, upright: bool = True, refine: bool = True
) -> FaceDetection | None:
    """dlib's 68 landmarks of the best-scoring face in ``image`` (H x W grey or RGB, uint8),
    from the first step of ``steps`` (see the module docstring) that finds a face,
    refitted upright unless ``upright=False``, then refitted in the canonical crop
    (:func:`msmmt.ops.landmark_refine.refine_landmarks`) unless ``refine=False``."""
    unknown = set(steps) - set(CASCADE)
    if unknown:
        raise ValueError(f"unknown face detection step(s) {sorted(unknown)}; known: {CASCADE}")
    gray = to_uint8_gray(image)
    for step in steps:
        found = _step_fit(gray, step)
        if found is not None:
            searched, points = found
            if upright:
                points = upright_landmarks(searched, points)
            return FaceDetection(refine_landmarks(gray, points) if refine else points, step)
    return None


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (left, top, right, bottom, ...)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def follow_face(image: np.ndarray, previous: np.ndarray, jump_score: float = 0.5) -> np.ndarray:
    """68 landmarks of the face that continues ``previous`` (its landmarks a moment ago) in
    ``image`` (grey or RGB, uint8): for tracking a face through a video.

    HOG's face boxes in the frame are compared with the box of ``previous``
    (:func:`_landmark_box`): the one overlapping it most (IoU >= 0.3) is the face, moved;
    with none overlapping, a box scoring ``jump_score`` or more is the face after a cut;
    with neither (HOG misses this face: small, dark, tilted), the face is where it was.
    The landmarks are then fitted in the canonical crop placed from that
    (:func:`msmmt.ops.landmark_refine.refine_landmarks`), twice when starting from
    ``previous`` (on the dark astronaut moved by (12, 8) px, the eye corners are off by
    2.5 px after one refit, 0.5 px after two): it follows a face that moved by a fraction
    of its size.
    """
    gray = to_uint8_gray(image)
    before = _landmark_box(previous)
    boxes = hog_boxes(gray, 0)
    near = max(boxes, key=lambda b: _overlap(b, before), default=None)
    if near is not None and _overlap(near, before) >= 0.3:
        start = fit_landmarks(gray, near)
    elif boxes and boxes[0][4] >= jump_score:
        start = fit_landmarks(gray, boxes[0])
    else:
        return refine_landmarks(gray, refine_landmarks(gray, previous))
    return refine_landmarks(gray, start)


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
    face_step: str | None = None
    """The detection step that found the face (:data:`CASCADE`, or ``landmarks_fn`` for a
    caller's function that returns bare landmarks); None without alignment."""


def find_landmarks(
    frames: np.ndarray, tries: int, landmarks_fn: LandmarksFn = face_landmarks, clip: str = "clip"
) -> tuple[int, FaceDetection]:
    """The face of the first of ``frames[:tries]`` that shows one: (frame index, detection).

    Raises DatasetError naming ``clip`` when none does.
    """
    n = min(tries, len(frames))
    for i in range(n):
        found = landmarks_fn(frames[i])
        if isinstance(found, FaceDetection):
            return i, found
        if found is not None:
            return i, FaceDetection(np.asarray(found, dtype=np.float64), "landmarks_fn")
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
    landmarks_fn: LandmarksFn | None = None,
    clip: str = "clip",
) -> AlignedFaces:
    """Aligned ``face_size`` square crops of a clip's frames (T, H, W, 3) uint8.

    The landmarks come from the first frame with a face among the first
    ``cfg.face_search_frames``, found by ``landmarks_fn`` (default: the cascade of
    ``cfg.face_cascade``); the one transform is applied to every frame.
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
    if landmarks_fn is None:
        landmarks_fn = partial(face_landmarks, steps=cfg.face_cascade)
    index, found = find_landmarks(frames, cfg.face_search_frames, landmarks_fn, clip)
    matrix = alignment_matrix(found.landmarks, size, cfg.eye_distance, cfg.face_margin)
    aligned = _transform(found.landmarks, matrix)
    eyes = aligned[[LEFT_INNER_EYE, RIGHT_INNER_EYE]]
    return AlignedFaces(warp_frames(frames, matrix, size), aligned, matrix, eyes, index, found.step)
