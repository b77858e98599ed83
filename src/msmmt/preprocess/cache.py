"""The preprocessing cache: one folder per clip, one file per stage output and settings.

Layout under ``CACHE``::

    clips/<dataset>/<subject>/<clip>/faces-<h>.npz     aligned face crops onset..end
                                     texture-<h>.png   dynamic image (image_size)
                                     motion-<h>.png    (u, v, |e|) image (image_size)
                                     face-<h>.png      aligned apex face (image_size)
    manifest.csv, failures.csv

Each ``<h>`` hashes exactly what the file depends on: the settings of its own
stage and of the stages before it, and the clip's frame numbers it reads. So
changing ``dynamic_image`` recomputes only the textures (from the cached faces),
changing the magnification recomputes textures and motion images, changing
``image_size`` recomputes the three images, and a new apex annotation recomputes
only the motion and face images. The magnified clip is not stored: magnifying
the cached faces takes a small part of a clip's time (see
``benchmarks/bench_preprocess.py``) and would double the cache's size.
Every file is written atomically, so an entry that exists is complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.io import atomic_path
from msmmt.core.names import file_safe
from msmmt.ops.face import AlignedFaces

__all__ = [
    "CACHE_VERSION",
    "ClipEntries",
    "clip_entries",
    "clip_folder",
    "load_faces",
    "save_faces",
    "stage_settings",
    "write_image",
]

CACHE_VERSION = 1
"""Bumped when a stage's algorithm changes, so that old entries are not reused."""

_STAGE_FIELDS = {
    "faces": (
        "align",
        "face_size",
        "face_margin",
        "eye_distance",
        "face_search_frames",
        "face_cascade",
    ),
    "magnify": (
        "magnify",
        "magnify_mode",
        "magnify_alpha",
        "magnify_r1",
        "magnify_r2",
        "magnify_lambda_c",
        "magnify_levels",
    ),
    "texture": ("dynamic_image", "image_size"),
    "motion": ("image_size",),
    "face": ("image_size",),
}


def stage_settings(cfg: PreprocessConfig, stage: str) -> dict:
    """The settings of ``cfg`` that ``stage`` (faces, magnify, texture, motion, face) reads itself."""
    values = {name: getattr(cfg, name) for name in _STAGE_FIELDS[stage]}
    if stage == "faces" and not cfg.align:
        values = {"align": False, "face_size": cfg.face_size}
    if stage == "magnify" and not cfg.magnify:
        values = {"magnify": False}
    return values


def _hash(parts: dict) -> str:
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ClipEntries:
    """The cache files of one clip under one configuration."""

    folder: Path
    faces: Path
    texture: Path
    motion: Path
    face: Path

    def image(self, name: str) -> Path:
        """Path of the final image ``name`` (texture, motion or face)."""
        return {"texture": self.texture, "motion": self.motion, "face": self.face}[name]


def clip_folder(cache_dir: str | Path, dataset: str, subject: str, clip: str) -> Path:
    """``cache_dir/clips/<dataset>/<subject>/<clip>``, names made file-system safe;
    a subject already prefixed with ``dataset/`` is not prefixed twice."""
    parts = [dataset, *subject.replace("\\", "/").split("/"), clip]
    if len(parts) > 2 and parts[1] == parts[0]:
        parts.pop(1)
    return Path(cache_dir, "clips", *(file_safe(p) or "_" for p in parts))


def clip_entries(
    folder: Path, cfg: PreprocessConfig, onset: int, apex: int, offset: int, end: int
) -> ClipEntries:
    """The entries of a clip whose frames ``onset..end`` (dataset frame numbers) are used,
    the texture from ``onset..offset`` and the motion / face images from ``onset`` and ``apex``."""
    faces = {"faces": stage_settings(cfg, "faces"), "frames": [onset, end]}
    magnified = {**faces, "magnify": stage_settings(cfg, "magnify")}
    texture = {**magnified, "texture": stage_settings(cfg, "texture"), "frames": [onset, offset]}
    motion = {**magnified, "motion": stage_settings(cfg, "motion"), "frames": [onset, apex]}
    face = {**faces, "face": stage_settings(cfg, "face"), "frames": [onset, apex]}
    return ClipEntries(
        folder=folder,
        faces=folder / f"faces-{_hash(faces)}.npz",
        texture=folder / f"texture-{_hash(texture)}.png",
        motion=folder / f"motion-{_hash(motion)}.png",
        face=folder / f"face-{_hash(face)}.png",
    )


def save_faces(path: Path, faces: AlignedFaces) -> Path:
    """Store aligned faces (uncompressed npz: zlib saves a fifth of the size of video
    frames and takes ten times longer), atomically."""
    arrays = {"frames": faces.frames, "matrix": faces.matrix}
    if faces.landmarks is not None:
        arrays.update(
            landmarks=faces.landmarks,
            eye_targets=faces.eye_targets,
            detected_frame=np.array(faces.detected_frame),
            face_step=np.array(faces.face_step or ""),
        )
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def load_faces(path: Path) -> AlignedFaces | None:
    """Aligned faces stored by :func:`save_faces`; None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            aligned = "landmarks" in data.files
            return AlignedFaces(
                frames=data["frames"],
                landmarks=data["landmarks"] if aligned else None,
                matrix=data["matrix"],
                eye_targets=data["eye_targets"] if aligned else None,
                detected_frame=int(data["detected_frame"]) if aligned else None,
                face_step=str(data["face_step"]) if "face_step" in data.files else None,
            )
    except (OSError, ValueError, KeyError):
        return None


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image (PNG by extension), atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1])):
            raise OSError(f"could not write image {path}")
    return path
