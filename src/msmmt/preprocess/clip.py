"""Clip -> (dynamic image, flow/strain image, aligned apex face) for one clip in memory.

:func:`process_clip` works on frames ``onset..end`` with ``end = max(apex, offset)``:

1. face: landmarks on the onset frame (or the next ones), one similarity transform
   for every frame, ``face_size`` crop (:mod:`msmmt.ops.face`);
2. magnify: Eulerian video magnification of the aligned clip from the onset on
   (:mod:`msmmt.ops.magnify`; causal, so the onset frame is unchanged);
3. texture: dynamic image of the magnified frames ``onset..offset``
   (:mod:`msmmt.ops.dynamic_image`);
4. motion: TV-L1 flow from the magnified onset to the magnified apex, strain,
   the (u, v, |e|) image (:mod:`msmmt.ops.flow`);
5. face image: the aligned (not magnified) apex frame, for explanations.

The three images are ``image_size`` squares. Only the frames a requested image
needs are magnified. :mod:`msmmt.preprocess.batch` runs this over a dataset
through the cache of :mod:`msmmt.preprocess.cache`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.records import DatasetError
from msmmt.ops.dynamic_image import dynamic_image
from msmmt.ops.face import AlignedFaces, LandmarksFn, align_faces
from msmmt.ops.flow import motion_image, tvl1_flow
from msmmt.ops.magnify import magnify
from msmmt.ops.motion_signal import clip_key_frames
from msmmt.ops.scaling import resize_square

__all__ = [
    "IMAGES",
    "ClipImages",
    "ClipRange",
    "StageClock",
    "align_clip",
    "clip_range",
    "estimate_apex",
    "modality_images",
    "process_clip",
]

IMAGES = ("texture", "motion", "face")


@dataclass(frozen=True)
class ClipImages:
    texture: np.ndarray
    """(S, S, 3) uint8 dynamic image of the aligned, magnified clip onset..offset."""
    motion: np.ndarray
    """(S, S, 3) uint8 (u, v, |e|) image of the flow onset -> apex."""
    face: np.ndarray
    """(S, S, 3) uint8 aligned apex frame."""
    info: dict = field(default_factory=dict)
    """Key-frame indices, the frame the landmarks came from, the 68 aligned landmarks
    (in image_size pixels), the eye targets (face_size pixels), milliseconds per stage."""


@dataclass(frozen=True)
class ClipRange:
    """Positions of a clip's key frames; ``end = max(apex, offset)`` is the last one used."""

    onset: int
    apex: int
    offset: int

    @property
    def end(self) -> int:
        return max(self.apex, self.offset)

    def relative(self) -> ClipRange:
        """The same range counted from the onset."""
        return ClipRange(0, self.apex - self.onset, self.offset - self.onset)


def clip_range(
    n_frames: int, onset: int, apex: int | None, offset: int | None = None, clip: str = "clip"
) -> ClipRange:
    """Check and complete key-frame positions (0-based) of a clip of ``n_frames`` frames.

    ``offset`` defaults to the last frame and ``apex`` to the middle of onset..offset.
    An apex after the offset (a known annotation defect) extends the used frames to the apex.
    """
    offset = n_frames - 1 if offset is None else offset
    apex = (onset + offset) // 2 if apex is None else apex
    for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
        if not 0 <= value < n_frames:
            raise DatasetError(
                f"{clip}: {name} index {value} is outside the clip's {n_frames} frames"
            )
    if not onset <= apex or not onset <= offset:
        raise DatasetError(f"{clip}: onset {onset} comes after apex {apex} or offset {offset}")
    return ClipRange(onset, apex, offset)


class StageClock:
    """Times the stages of one clip; ``current`` names the last one entered (for failure reports)."""

    def __init__(self) -> None:
        self.current = "start"
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = name
        start = time.perf_counter()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + 1000 * (time.perf_counter() - start)


def modality_images(
    faces: np.ndarray,
    rng: ClipRange,
    cfg: PreprocessConfig,
    need: Sequence[str] = IMAGES,
    clock: StageClock | None = None,
) -> dict[str, np.ndarray]:
    """The images in ``need`` (texture, motion, face) from aligned faces onset..end.

    ``rng`` is counted from the onset (``faces[0]`` is the onset frame).
    """
    clock = clock or StageClock()
    out: dict[str, np.ndarray] = {}
    if "face" in need:
        with clock("face_image"):
            out["face"] = resize_square(faces[rng.apex], cfg.image_size)
    # Magnify only the frames the requested images read (the filter is causal).
    length = max(
        rng.offset + 1 if "texture" in need else 0, rng.apex + 1 if "motion" in need else 0
    )
    if length == 0:
        return out
    with clock("magnify"):
        clip = faces[:length].astype(np.float32)
        if cfg.magnify:
            clip = magnify(
                clip,
                alpha=cfg.magnify_alpha,
                r1=cfg.magnify_r1,
                r2=cfg.magnify_r2,
                lambda_c=cfg.magnify_lambda_c,
                levels=cfg.magnify_levels,
            )
    if "texture" in need:
        with clock("texture"):
            out["texture"] = dynamic_image(
                clip[: rng.offset + 1], cfg.dynamic_image, cfg.image_size
            )
    if "motion" in need:
        with clock("flow"):
            flow = tvl1_flow(clip[0], clip[rng.apex])
        with clock("motion"):
            out["motion"] = motion_image(flow, cfg.image_size)
    return out


def align_clip(
    frames: np.ndarray,
    rng: ClipRange,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn | None,
    clip: str,
    clock: StageClock,
) -> AlignedFaces:
    """Aligned faces of ``frames[onset..end]`` (landmarks searched from the onset on)."""
    with clock("face"):
        return align_faces(frames[rng.onset : rng.end + 1], cfg, landmarks_fn, clip)


def estimate_apex(faces: AlignedFaces, rng: ClipRange) -> tuple[ClipRange, dict]:
    """``rng`` with its apex moved to the peak of the facial motion of the aligned
    ``faces`` (onset..end, :func:`msmmt.ops.motion_signal.clip_key_frames`), and what
    was estimated (onset, apex, offset as positions in the clip, and how)."""
    size = faces.frames.shape[1]
    landmarks = faces.landmarks
    if landmarks is None:  # no alignment: the regions of a face that fills the crop
        landmarks = np.array([[size / 2, size / 2]] * 68)
    found = clip_key_frames(faces.frames, landmarks)
    estimate = {
        "onset": rng.onset + found.onset,
        "apex": rng.onset + found.apex,
        "offset": rng.onset + found.offset,
        "method": found.method,
    }
    return ClipRange(rng.onset, estimate["apex"], rng.offset), estimate


def _info(rng: ClipRange, faces: AlignedFaces, cfg: PreprocessConfig, clock: StageClock) -> dict:
    to_image = cfg.image_size / cfg.face_size
    return {
        "onset": rng.onset,
        "apex": rng.apex,
        "offset": rng.offset,
        "detected_frame": None
        if faces.detected_frame is None
        else rng.onset + faces.detected_frame,
        "face_step": faces.face_step,
        "landmarks": None if faces.landmarks is None else (faces.landmarks * to_image).tolist(),
        "eye_targets": None if faces.eye_targets is None else faces.eye_targets.tolist(),
        "ms": dict(clock.ms),
    }


def process_clip(
    frames: np.ndarray,
    onset_idx: int,
    apex_idx: int | None,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn | None = None,
    offset_idx: int | None = None,
    clip: str = "clip",
    estimate: bool = False,
) -> ClipImages:
    """Texture, motion and face images of one clip (T, H, W, 3) uint8 RGB.

    Indices are 0-based positions in ``frames``; ``offset_idx`` defaults to the last
    frame and ``apex_idx=None`` to the middle of onset..offset, or, with
    ``estimate=True``, to the peak of the facial motion (:func:`estimate_apex`; the
    estimate is in ``info["estimate"]``). Raises DatasetError (naming ``clip``) for
    bad indices or a clip without a detectable face.
    """
    frames = np.asarray(frames)
    rng = clip_range(len(frames), onset_idx, apex_idx, offset_idx, clip)
    clock = StageClock()
    faces = align_clip(frames, rng, cfg, landmarks_fn, clip, clock)
    estimated = None
    if estimate and apex_idx is None:
        with clock("estimate"):
            rng, estimated = estimate_apex(faces, rng)
    images = modality_images(faces.frames, rng.relative(), cfg, IMAGES, clock)
    info = _info(rng, faces, cfg, clock)
    if estimated is not None:
        info["estimate"] = estimated
    return ClipImages(**images, info=info)
