"""Spotting micro-expressions in a long video (``msmmt spot``).

A video file or a folder of numbered frames is read once, frame by frame; the face
is found on the first frames (the detection cascade of :mod:`msmmt.ops.face`) and
every frame is reduced at once to a small grey crop of that face box
(``spot.face_px``), so memory and time grow with the video's length, not its
resolution. The face is found again every ``spot.track_seconds``
(:func:`msmmt.ops.face.follow_face`) and the box moved by how far the face moved (the
mean of its nose bridge and eye corners, which expressions barely move), linearly
between two such frames, so a head drifting across the frame stays in the box. The crops then go through :mod:`msmmt.ops.spotting`: the spotting signal,
its peaks, and each peak's onset, apex and offset. Frame numbers are a video's
0-based indices or a folder's own numbers (from the file names)::

    from msmmt.inference.spot import spot

    found = spot("long_video.avi")           # fps from the container
    for iv in found.intervals:
        print(iv.onset, iv.apex, iv.offset, iv.score)
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from msmmt.config import PreprocessConfig, SpotConfig
from msmmt.core.records import DatasetError
from msmmt.data.readers.clip import VIDEO_EXTENSIONS, read_clip
from msmmt.ops.face import face_landmarks, follow_face
from msmmt.ops.motion_signal import smooth
from msmmt.ops.spotting import (
    crop_box,
    crop_face,
    face_regions,
    peak_interval,
    robust_z,
    signal_peaks,
    spotting_signal,
)

__all__ = ["Interval", "SpotResult", "spot"]

log = logging.getLogger(__name__)

ANCHOR = [27, 28, 29, 30, 36, 39, 42, 45]
"""Landmarks whose mean gives the face's position for tracking: the nose bridge and the
eye corners (they move with the head, hardly with an expression)."""


@dataclass(frozen=True)
class Interval:
    """One spotted micro-expression, in the video's frame numbers."""

    onset: int
    apex: int
    offset: int
    score: float
    """Robust z-score of the spotting signal at the peak (how far above the video's noise)."""


@dataclass
class SpotResult:
    intervals: list[Interval]
    fps: float
    frames: int
    face_step: str
    """The detection step of the face cascade that found the face."""
    signal: np.ndarray = field(repr=False)
    """Robust z-score of the smoothed spotting signal, one value every ``stride`` frames."""
    stride: int = 1
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of reading + cropping, the signal and the intervals."""
    face_shift: np.ndarray | None = field(default=None, repr=False)
    """(frames, 2) shift (x, y, pixels) of the face box from where the first face was, per
    frame: where the face went (zeros with ``spot.track_seconds=None``)."""


def _frames(path: Path) -> tuple[Iterator[np.ndarray], list[int], float | None]:
    """Frames (RGB, one at a time), their numbers and the container's fps (None for a folder)."""
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise DatasetError(f"cannot open video {path}")
        fps = capture.get(cv2.CAP_PROP_FPS) or None

        def decode() -> Iterator[np.ndarray]:
            try:
                while True:
                    ok, image = capture.read()
                    if not ok:
                        return
                    yield image[..., ::-1]
            finally:
                capture.release()

        return decode(), [], fps
    sample = read_clip(path)  # a folder of numbered frames (raises DatasetError otherwise)

    def load() -> Iterator[np.ndarray]:
        for frame in sample.frames:
            image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"cannot decode frame {frame} (corrupt or not an image)")
            yield image[..., ::-1]

    return load(), list(sample.frame_numbers), None


def _crops(
    frames: Iterator[np.ndarray], size: int, search: int, cascade: list[str], where: str, every: int | None
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    """(T, size, size) grey face crops, the landmarks in crop pixels, the cascade step and
    the box's (T, 2) shift; the box follows the face, found again every ``every`` frames
    (None: fixed)."""
    head, found = [], None
    for frame in frames:
        head.append(frame)
        found = face_landmarks(frame, cascade)
        if found is not None or len(head) >= search:
            break
    if found is None:
        raise DatasetError(f"{where}: no face found in the first {len(head)} frame(s)")
    box = crop_box(found.landmarks)
    crops = [(crop_face(f, box, size), np.zeros(2)) for f in head]
    if every is None:
        crops.extend((crop_face(f, box, size), np.zeros(2)) for f in frames)
    else:
        crops.extend(_tracked_crops(frames, found.landmarks, box, size, every))
    landmarks = (found.landmarks - box[:2]) * size / box[2]
    return np.stack([c for c, _ in crops]), landmarks, found.step, np.array([d for _, d in crops])


def _tracked_crops(
    frames: Iterator[np.ndarray], first: np.ndarray, box: tuple[int, int, int], size: int, every: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(crop, shift) of ``box`` moved with the face: its landmarks ``first`` (on the frame
    before ``frames``) are followed every ``every`` frames and on the last one; the box's
    shift is linear in between."""
    anchor = first[ANCHOR].mean(0)
    points, shift = first, np.zeros(2)
    pending: list[np.ndarray] = []
    for frame in itertools.chain(frames, [None]):
        if frame is not None:  # grey: a crop and the landmarks need no more
            pending.append(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame)
        if not pending or (frame is not None and len(pending) < every):
            continue
        points = follow_face(pending[-1], points)
        target = points[ANCHOR].mean(0) - anchor
        yield from _shifted_crops(pending, box, shift, target, size)
        pending, shift = [], target


def _shifted_crops(
    frames: Sequence[np.ndarray], box: tuple[int, int, int], start: np.ndarray, end: np.ndarray, size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(crop, shift) of ``box`` shifted from ``start`` (before the first frame) to ``end``
    (at the last)."""
    x0, y0, side = box
    for i, frame in enumerate(frames, 1):
        shift = start + (end - start) * i / len(frames)
        yield crop_face(frame, (x0 + shift[0], y0 + shift[1], side), size), shift


def spot(
    path: str | Path,
    cfg: SpotConfig | None = None,
    fps: float | None = None,
    preprocess: PreprocessConfig | None = None,
) -> SpotResult:
    """Micro-expression intervals of the video or frame folder at ``path``.

    ``fps`` overrides the container's (and is required for a folder of frames);
    ``preprocess`` gives the face cascade and the number of frames searched for a face.
    Raises DatasetError (naming the file) for unreadable input or no face.
    """
    cfg = cfg or SpotConfig()
    pre = preprocess or PreprocessConfig()
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such video or folder of frames")
    clock = {}
    start = time.perf_counter()
    frames, numbers, container_fps = _frames(path)
    fps = fps or container_fps
    if not fps or fps <= 0:
        raise DatasetError(f"{path}: frame rate unknown; give it with --fps")
    every = max(1, round(cfg.track_seconds * fps)) if cfg.track_seconds else None
    crops, landmarks, step, face_shift = _crops(
        frames, cfg.face_px, pre.face_search_frames, list(pre.face_cascade), str(path), every
    )
    numbers = numbers or list(range(len(crops)))
    clock["read"] = time.perf_counter() - start
    regions = face_regions(landmarks, cfg.face_px, head_motion=cfg.head_motion)
    stride = max(1, round(fps / cfg.signal_fps)) if cfg.signal_fps else 1
    rate = fps / stride  # of the frames the signal is computed on
    start = time.perf_counter()
    raw = spotting_signal(crops[::stride], max(1, round(cfg.k_seconds * rate)), regions)
    z = robust_z(smooth(raw, max(1, round(cfg.smooth_seconds * rate))))
    clock["signal"] = time.perf_counter() - start
    start = time.perf_counter()
    intervals = []
    window = max(1, round(cfg.window_seconds * fps))
    for peak in signal_peaks(z, cfg.threshold, window // stride):
        onset, apex, offset = peak_interval(crops, int(peak) * stride, window, regions, cfg.fraction)
        if cfg.max_seconds is not None and (offset - onset + 1) / fps > cfg.max_seconds:
            continue
        intervals.append(Interval(numbers[onset], numbers[apex], numbers[offset], float(z[peak])))
    clock["intervals"] = time.perf_counter() - start
    log.debug("%s: %d frames at %g fps, %s", path, len(crops), fps, clock)
    return SpotResult(intervals, float(fps), len(crops), step, z, stride, clock, face_shift)
