"""Spotting micro-expressions in a long video (``msmmt spot``).

A video file or a folder of numbered frames is read once, frame by frame; the face
is found on the first frames (the detection cascade of :mod:`msmmt.ops.face`) and
every frame is reduced at once to a small grey crop of that face box
(``spot.face_px``), so memory and time grow with the video's length, not its
resolution. The crops then go through :mod:`msmmt.ops.spotting`: the spotting signal,
its peaks, and each peak's onset, apex and offset. Frame numbers are a video's
0-based indices or a folder's own numbers (from the file names)::

    from msmmt.inference.spot import spot

    found = spot("long_video.avi")           # fps from the container
    for iv in found.intervals:
        print(iv.onset, iv.apex, iv.offset, iv.score)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from msmmt.config import PreprocessConfig, SpotConfig
from msmmt.core.records import DatasetError
from msmmt.data.readers.clip import VIDEO_EXTENSIONS, read_clip
from msmmt.ops.face import face_landmarks
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
    frames: Iterator[np.ndarray], size: int, search: int, cascade: list[str], where: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(T, size, size) grey face crops, the landmarks in crop pixels and the cascade step."""
    head, found = [], None
    for frame in frames:
        head.append(frame)
        found = face_landmarks(frame, cascade)
        if found is not None or len(head) >= search:
            break
    if found is None:
        raise DatasetError(f"{where}: no face found in the first {len(head)} frame(s)")
    box = crop_box(found.landmarks)
    crops = [crop_face(f, box, size) for f in head]
    crops.extend(crop_face(f, box, size) for f in frames)
    landmarks = (found.landmarks - box[:2]) * size / box[2]
    return np.stack(crops), landmarks, found.step


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
    crops, landmarks, step = _crops(
        frames, cfg.face_px, pre.face_search_frames, list(pre.face_cascade), str(path)
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
    return SpotResult(intervals, float(fps), len(crops), step, z, stride, clock)
