"""Clip -> (dynamic image, flow/strain image, aligned apex face) for one clip in memory.

:func:`process_clip` works on frames ``onset..offset`` (key frames resolved by
:mod:`msmmt.core.keyframes`, so onset <= apex <= offset):

1. face: landmarks on the onset frame (or the next ones), one similarity transform
   for every frame, ``face_size`` crop (:mod:`msmmt.ops.face`);
2. magnify: Eulerian motion magnification of the aligned clip from the onset on,
   the onset being its first frame (:mod:`msmmt.ops.magnify`; causal, so the
   onset frame is unchanged);
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
from msmmt.core.keyframes import KeyFrames, key_frame_positions
from msmmt.ops.dynamic_image import dynamic_image
from msmmt.ops.face import AlignedFaces, LandmarksFn, align_faces
from msmmt.ops.flow import motion_image, tvl1_flow
from msmmt.ops.magnify import magnify
from msmmt.ops.motion_signal import clip_key_frames
from msmmt.ops.scaling import resize_square

__all__ = [
    "IMAGES",
    "ClipImages",
    "StageClock",
    "align_clip",
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
    marks: KeyFrames,
    cfg: PreprocessConfig,
    need: Sequence[str] = IMAGES,
    clock: StageClock | None = None,
) -> dict[str, np.ndarray]:
    """The images in ``need`` (texture, motion, face) from aligned faces onset..offset.

    ``marks`` are counted from the onset (``faces[0]`` is the onset frame).
    """
    clock = clock or StageClock()
    out: dict[str, np.ndarray] = {}
    if "face" in need:
        with clock("face_image"):
            out["face"] = resize_square(faces[marks.apex], cfg.image_size)
    # Magnify only the frames the requested images read (the filter is causal).
    length = max(
        marks.offset + 1 if "texture" in need else 0, marks.apex + 1 if "motion" in need else 0
    )
    if length == 0:
        return out
    with clock("magnify"):
        clip = faces[:length].astype(np.float32)
        if cfg.magnify:
            clip = magnify(
                clip,
                alpha=cfg.magnify_alpha,
                mode=cfg.magnify_mode,
                lambda_c=cfg.magnify_lambda_c,
                levels=cfg.magnify_levels,
                r1=cfg.magnify_r1,
                r2=cfg.magnify_r2,
            )
    if "texture" in need:
        with clock("texture"):
            out["texture"] = dynamic_image(
                clip[: marks.offset + 1], cfg.dynamic_image, cfg.image_size
            )
    if "motion" in need:
        with clock("flow"):
            flow = tvl1_flow(clip[0], clip[marks.apex])
        with clock("motion"):
            out["motion"] = motion_image(flow, cfg.image_size)
    return out


def align_clip(
    frames: np.ndarray,
    marks: KeyFrames,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn | None,
    clip: str,
    clock: StageClock,
) -> AlignedFaces:
    """Aligned faces of ``frames[onset..offset]`` (landmarks searched from the onset on)."""
    with clock("face"):
        return align_faces(frames[marks.onset : marks.offset + 1], cfg, landmarks_fn, clip)


def estimate_apex(faces: AlignedFaces, marks: KeyFrames) -> tuple[KeyFrames, dict]:
    """``marks`` with the apex moved to the peak of the facial motion of the aligned
    ``faces`` (onset..offset, :func:`msmmt.ops.motion_signal.clip_key_frames`), and what
    was estimated (onset, apex, offset as positions in the clip, and how)."""
    size = faces.frames.shape[1]
    landmarks = faces.landmarks
    if landmarks is None:  # no alignment: the regions of a face that fills the crop
        landmarks = np.array([[size / 2, size / 2]] * 68)
    found = clip_key_frames(faces.frames, landmarks)
    estimate = {
        "onset": marks.onset + found.onset,
        "apex": marks.onset + found.apex,
        "offset": marks.onset + found.offset,
        "method": found.method,
    }
    return KeyFrames(marks.onset, estimate["apex"], marks.offset), estimate


def _info(marks: KeyFrames, faces: AlignedFaces, cfg: PreprocessConfig, clock: StageClock) -> dict:
    to_image = cfg.image_size / cfg.face_size
    return {
        "onset": marks.onset,
        "apex": marks.apex,
        "offset": marks.offset,
        "detected_frame": None
        if faces.detected_frame is None
        else marks.onset + faces.detected_frame,
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

    Indices are 0-based positions in ``frames``, completed and checked by the key-frame
    rule of :mod:`msmmt.core.keyframes` (``offset_idx`` None: the last frame;
    ``apex_idx`` None: the middle of onset..offset, or, with ``estimate=True``, the
    peak of the facial motion (:func:`estimate_apex`; the estimate is in
    ``info["estimate"]``)). Raises DatasetError (naming ``clip``) for bad indices or a
    clip without a detectable face.
    """
    frames = np.asarray(frames)
    marks = key_frame_positions(range(len(frames)), onset_idx, apex_idx, offset_idx, clip)
    clock = StageClock()
    faces = align_clip(frames, marks, cfg, landmarks_fn, clip, clock)
    estimated = None
    if estimate and apex_idx is None:
        with clock("estimate"):
            marks, estimated = estimate_apex(faces, marks)
    images = modality_images(faces.frames, marks.relative(), cfg, IMAGES, clock)
    info = _info(marks, faces, cfg, clock)
    if estimated is not None:
        info["estimate"] = estimated
    return ClipImages(**images, info=info)
