"""A single clip (a folder of numbered frames or a video file) and decoding a clip's frames.

Frame numbers of a folder come from its file names (``img10`` after ``img9``, see
:mod:`msmmt.data.readers._frames`); those of a video are 0-based frame indices.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from msmmt.core.keyframes import resolve_marks
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers._frames import existing, numbered_frames

__all__ = [
    "VIDEO_EXTENSIONS", "check_same_size", "decode_frame", "load_frames", "open_video", "read_clip",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"}
)


def open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture of the video at ``path``; DatasetError naming it if it does not open."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"cannot open video {path}")
    return capture


def _count_frames(path: Path) -> tuple[int, str | None]:
    """Frames of the video counted by decoding (container headers can be wrong), and a
    warning when fewer decode than the header announces (a truncated or damaged file)."""
    capture = open_video(path)
    try:
        announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        n = 0
        while capture.grab():
            n += 1
    finally:
        capture.release()
    if n == 0:
        raise DatasetError(f"video {path} has no decodable frame")
    if announced > n:
        warning = (
            f"video {path}: only {n} of the {announced} frames its header announces could be "
            "decoded (truncated or damaged?); the clip is taken to end there"
        )
        log.warning("%s", warning)
        return n, warning
    return n, None


def read_clip(
    path: str | Path,
    onset: int | None = None,
    apex: int | None = None,
    offset: int | None = None,
) -> Sample:
    """A Sample for one unlabelled clip (``dataset="clip"``, ``label=""``).

    Without onset / offset the first / last frame is used, without apex the middle
    of onset..offset; what was assumed is written, in words, to ``extra["assumed"]``
    (and ``apex_estimated`` is set when the apex was).
    """
    path = existing(path, "clip")
    warning = None
    if path.is_dir():
        frames, numbers = numbered_frames(path)
        video = None
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        n, warning = _count_frames(path)
        frames, numbers, video = (), tuple(range(n)), path
    else:
        raise DatasetError(
            f"clip {path} is neither a folder of frames nor a video "
            f"({', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    onset, apex_number, offset, assumed = resolve_marks(numbers, onset, apex, offset, str(path))
    name = path.stem if video else path.name
    return Sample(
        dataset="clip",
        subject=f"clip/{name}",
        clip=name,
        label="",
        frames=frames,
        frame_numbers=numbers,
        video=video,
        onset=onset,
        apex=apex_number,
        offset=offset,
        apex_estimated=apex is None,
        extra={
            **({"assumed": "; ".join(assumed)} if assumed else {}),
            **({"warning": warning} if warning else {}),
        },
    )


def decode_frame(path: Path) -> np.ndarray:
    """The image file at ``path`` as BGR; DatasetError naming it if it cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read frame {path}: {exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DatasetError(f"cannot decode frame {path} (corrupt or not an image)")
    return image


def _video_frames(video: Path, numbers: list[int]):
    """Yield the frames of ``video`` with the given (increasing, 0-based) indices, as BGR."""
    capture = open_video(video)
    wanted = set(numbers)
    try:
        for index in range(numbers[-1] + 1):
            ok = capture.grab()
            if ok and index in wanted:
                ok, image = capture.retrieve()
                if ok:
                    yield image
            if not ok:
                raise DatasetError(
                    f"video {video} ended after {index} frames; frame {numbers[-1]} was expected"
                )
    finally:
        capture.release()


def load_frames(sample: Sample, first: int | None = None, last: int | None = None) -> np.ndarray:
    """The clip's frames as a (T, H, W, 3) uint8 RGB array; greyscale is replicated.

    ``first`` / ``last`` (frame numbers, inclusive) limit the frames to that range,
    e.g. ``load_frames(s, s.onset, s.apex)``; T then counts the frames in it. Raises
    DatasetError naming the file for a missing, corrupt or differently sized frame.
    """
    if not sample.frame_numbers:
        raise DatasetError(f"{sample.key}: the sample has no frames (precomputed images only)")
    lo = sample.frame_numbers[0] if first is None else first
    hi = sample.frame_numbers[-1] if last is None else last
    numbers = [n for n in sample.frame_numbers if lo <= n <= hi]
    if not numbers:
        raise DatasetError(
            f"{sample.key}: no frame numbered {lo}..{hi} "
            f"(frames {sample.frame_numbers[0]}..{sample.frame_numbers[-1]})"
        )
    if sample.video is not None:
        names = [f"{sample.video} frame {n}" for n in numbers]
        images = _video_frames(sample.video, numbers)
    else:
        paths = [
            p for p, n in zip(sample.frames, sample.frame_numbers, strict=True) if lo <= n <= hi
        ]
        names = [str(p) for p in paths]
        images = (decode_frame(p) for p in paths)
    out = None
    for t, (name, image) in enumerate(zip(names, images, strict=True)):
        if out is None:
            out = np.empty((len(numbers), *image.shape), np.uint8)
        check_same_size(name, image, names[0], out.shape[1:])
        out[t] = image[..., ::-1]  # BGR -> RGB
    return out


def check_same_size(name: str, image: np.ndarray, first: str, shape: tuple[int, ...]) -> None:
    """Refuse frame ``name`` unless ``image`` has the ``shape`` of the clip's ``first`` frame."""
    if image.shape != tuple(shape):
        raise DatasetError(
            f"frame {name} is {image.shape[1]}x{image.shape[0]}, unlike the first frame "
            f"{first} ({shape[1]}x{shape[0]}): the frames of a clip must be of one size"
        )
