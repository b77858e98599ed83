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

:func:`classify_intervals` then runs a trained model on each interval in two more passes
over a video, whatever the number of intervals: one that counts its frames
(:func:`msmmt.data.readers.read_clip`) and one that decodes only the intervals' frames
(:func:`interval_frames`); an interval that cannot be classified is reported and the
others go on.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from msmmt.config import PreprocessConfig, SpotConfig
from msmmt.core.records import DatasetError
from msmmt.data.readers.clip import (
    VIDEO_EXTENSIONS,
    check_same_size,
    decode_frame,
    open_video,
    read_clip,
)
from msmmt.inference.predict import Analysis, Predictor
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

__all__ = ["Interval", "SpotResult", "classify_intervals", "interval_frames", "spot"]

log = logging.getLogger(__name__)

ANCHOR = [27, 28, 29, 30, 36, 39, 42, 45]
"""Landmarks whose mean gives the face's position for tracking: the nose bridge and the
eye corners (they move with the head, hardly with an expression)."""

SIGNAL_CHUNK = 256
"""Frames of the spotting signal computed between two updates of its progress bar."""


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
    frame_span: tuple[int, int] = (0, 0)
    """The first and last frame numbers (a video's 0-based indices, a folder's own numbers)."""


def _frames(
    path: Path, wanted: Callable[[int], bool] | None = None
) -> tuple[Iterator[tuple[int, np.ndarray]], int, float | None]:
    """The (number, RGB frame) pairs of a video file or frame folder, decoded one at a time,
    how many frames it announces and the container's fps (None for a folder).

    With ``wanted``, only the frames whose number it accepts are decoded (a video's others
    are skipped, a folder's not read). Raises DatasetError naming the file for a video that
    does not open, or a folder frame that does not decode or differs in size from the first.
    """
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        capture = open_video(path)
        total = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        return _video_frames(capture, wanted), total, capture.get(cv2.CAP_PROP_FPS) or None
    sample = read_clip(path)  # a folder of numbered frames (raises DatasetError otherwise)
    return _folder_frames(sample.frames, sample.frame_numbers, wanted), len(sample.frames), None


def _video_frames(
    capture: cv2.VideoCapture, wanted: Callable[[int], bool] | None
) -> Iterator[tuple[int, np.ndarray]]:
    """(0-based index, RGB frame) of an opened video until it ends; released at the end."""
    try:
        for index in itertools.count():
            if not capture.grab():
                return
            if wanted is None or wanted(index):
                ok, image = capture.retrieve()
                if not ok:
                    return
                yield index, image[..., ::-1]
    finally:
        capture.release()


def _folder_frames(
    files: Sequence[Path], numbers: Sequence[int], wanted: Callable[[int], bool] | None
) -> Iterator[tuple[int, np.ndarray]]:
    """(number, RGB frame) of a folder's frame ``files``, all of the first one's size."""
    first = None
    for number, frame in zip(numbers, files, strict=True):
        if wanted is not None and not wanted(number):
            continue
        image = decode_frame(frame)
        first = first or (str(frame), image.shape)
        check_same_size(str(frame), image, *first)
        yield number, image[..., ::-1]


def _numbered(
    frames: Iterable[tuple[int, np.ndarray]], numbers: list[int]
) -> Iterator[np.ndarray]:
    """The frames of ``frames`` (number, frame) pairs, each number appended to ``numbers``."""
    for number, frame in frames:
        numbers.append(number)
        yield frame


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
        raise DatasetError(
            f"{where}: no face found in the first {len(head)} frame(s) (search more with "
            "--set preprocess.face_search_frames=N)"
        )
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


def _check_length(path: Path, frames: int, fps: float, stride: int, k: int) -> None:
    """Refuse a video too short for the spotting signal: each frame it scores is compared with
    the frames ``k`` signal frames (``stride`` video frames each) before and after it."""
    needed = 2 * k * stride + 1
    if frames < needed:
        raise DatasetError(
            f"{path}: {frames} frame(s) ({frames / fps:.2f} s at {fps:g} fps): too short to spot "
            f"in; the spotting signal compares each frame with the frames spot.k_seconds before "
            f"and after it, so it needs at least {needed} frames"
        )


def _signal(crops: np.ndarray, k: int, regions, progress: bool) -> np.ndarray:
    """:func:`msmmt.ops.spotting.spotting_signal` of ``crops``, computed in chunks so that a
    progress bar can follow it (exactly the same: ``S(t)`` reads only frames t-k..t+k)."""
    out = np.zeros(len(crops))
    inner = range(k, len(crops) - k)
    with tqdm(
        total=len(inner), desc="spot: signal", unit="frame", disable=not progress, leave=False
    ) as bar:
        for a in range(inner.start, inner.stop, SIGNAL_CHUNK):
            b = min(a + SIGNAL_CHUNK, inner.stop)
            out[a:b] = spotting_signal(crops[a - k : b + k], k, regions)[k:-k]
            bar.update(b - a)
    return out


def spot(
    path: str | Path,
    cfg: SpotConfig | None = None,
    fps: float | None = None,
    preprocess: PreprocessConfig | None = None,
    progress: bool = False,
) -> SpotResult:
    """Micro-expression intervals of the video or frame folder at ``path``.

    ``fps`` overrides the container's (and is required for a folder of frames);
    ``preprocess`` gives the face cascade and the number of frames searched for a face;
    ``progress`` shows bars (stderr) while the frames are read and the signal computed.
    Raises DatasetError (naming the file) for unreadable input, no face, or a video too
    short for the spotting signal.
    """
    cfg = cfg or SpotConfig()
    pre = preprocess or PreprocessConfig()
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such video or folder of frames")
    clock = {}
    start = time.perf_counter()
    frames, total, container_fps = _frames(path)
    fps = fps or container_fps
    if not fps or fps <= 0:
        raise DatasetError(f"{path}: frame rate unknown; give it with --fps")
    every = max(1, round(cfg.track_seconds * fps)) if cfg.track_seconds else None
    numbers: list[int] = []
    bar = tqdm(frames, total=total or None, desc="spot: reading", unit="frame", leave=False,
               disable=not progress)
    with bar:
        crops, landmarks, step, face_shift = _crops(
            _numbered(bar, numbers), cfg.face_px, pre.face_search_frames,
            list(pre.face_cascade), str(path), every,
        )
    clock["read"] = time.perf_counter() - start
    regions = face_regions(landmarks, cfg.face_px, head_motion=cfg.head_motion)
    stride = max(1, round(fps / cfg.signal_fps)) if cfg.signal_fps else 1
    rate = fps / stride  # of the frames the signal is computed on
    k = max(1, round(cfg.k_seconds * rate))
    _check_length(path, len(crops), fps, stride, k)
    start = time.perf_counter()
    raw = _signal(crops[::stride], k, regions, progress)
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
    return SpotResult(
        intervals, float(fps), len(crops), step, z, stride, clock, face_shift,
        frame_span=(numbers[0], numbers[-1]),
    )


def interval_frames(
    path: str | Path, intervals: Sequence[Interval]
) -> Iterator[tuple[Interval, np.ndarray]]:
    """Each interval's frames, onset to offset ((T, H, W, 3) uint8 RGB), read in one pass
    over the video or frame folder at ``path`` (the frames outside every interval are not
    decoded), in the order of their offsets. An interval the video ends before is not
    yielded."""
    open_ = {iv: [] for iv in intervals}

    def wanted(number: int) -> bool:
        return any(iv.onset <= number <= iv.offset for iv in open_)

    frames, _, _ = _frames(Path(path), wanted)
    for number, frame in frames:
        for iv, kept in open_.items():
            if iv.onset <= number <= iv.offset:
                kept.append(frame)
        for iv in [iv for iv in open_ if iv.offset <= number]:
            yield iv, np.stack(open_.pop(iv))
        if not open_:
            return


def classify_intervals(
    predictor: Predictor, path: str | Path, intervals: Sequence[Interval]
) -> Iterator[tuple[Interval, Analysis | DatasetError]]:
    """The predictor's analysis of each interval of the video or frame folder at ``path``
    (its onset, apex and offset as the marks), or the DatasetError that made it fail (no
    face, frames that no longer decode, a video ending early): one bad interval does not
    stop the others. A video is counted once (``read_clip``) and its intervals' frames
    decoded in one pass (:func:`interval_frames`); results come in the order of the
    offsets, those that failed to be read last."""
    path = Path(path)
    left = list(dict.fromkeys(intervals))
    try:
        whole = read_clip(path)
        for iv, frames in interval_frames(path, intervals):
            left.remove(iv)
            marks = {"onset": iv.onset, "apex": iv.apex, "offset": iv.offset}
            sample = dataclasses.replace(whole, **marks, apex_estimated=False, extra={})
            where = f"{path} frames {iv.onset}..{iv.offset}"
            try:
                yield iv, predictor.analyse_frames(sample, frames, where)
            except DatasetError as err:
                yield iv, err
    except DatasetError as err:  # the video or a frame no longer reads: the rest cannot be
        yield from ((iv, err) for iv in left)
        return
    for iv in left:
        yield iv, DatasetError(f"{path}: the video ended before frame {iv.offset}")
