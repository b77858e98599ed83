"""The preprocessing cache: one folder per clip, one file per stage output and settings.

Layout under ``CACHE``::

    clips/<dataset>/<subject>/<clip>-<k>/faces-<h>.npz     aligned face crops onset..end
                                         texture-<h>.png   dynamic image (image_size)
                                         motion-<h>.png    (u, v, |e|) image (image_size)
                                         face-<h>.png      aligned apex face (image_size)
    manifest.csv, manifest.json, failures.csv

``<k>`` hashes the sample's key (dataset, subject, clip), so two clips whose names
become the same file-safe name (``EP 02`` and ``EP_02``) never share a folder.
Each ``<h>`` hashes exactly what the file depends on: the settings of its own
stage and of the stages before it (:data:`FIELD_STAGE` assigns every
:class:`~msmmt.config.PreprocessConfig` field to one stage), the clip's frame
numbers it reads, and a fingerprint of those frames' files (name, size and
modification time: an edited or replaced frame makes a new entry). So changing
``dynamic_image`` recomputes only the textures (from the cached faces), changing
the magnification recomputes textures and motion images, changing ``image_size``
recomputes the three images, and a new apex annotation recomputes only the motion
and face images. The magnified clip is not stored: magnifying the cached faces
takes a small part of a clip's time (see ``benchmarks/bench_preprocess.py``) and
would double the cache's size. Every file is written atomically, so an entry that
exists is complete.

``manifest.json`` records the settings and msmmt version that made
``manifest.csv`` (and the CSV's hash) and every environment (libraries, CPU:
:mod:`msmmt.core.environment`) that computed clips in the cache; :func:`adopt_cache_settings`
gives a run the cache's settings and refuses a config that contradicts them. The entries'
keys do not hold the environment: a cache resumed after a library upgrade keeps its clips and
computes the missing ones with the new libraries, and :func:`cache_environments` says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

from msmmt import __version__
from msmmt.config import Config, ConfigError, PreprocessConfig
from msmmt.core.environment import differences, environment
from msmmt.core.io import atomic_path, atomic_write_json
from msmmt.core.names import file_safe
from msmmt.core.records import Sample
from msmmt.data.readers import read_for_training
from msmmt.ops.face import AlignedFaces

__all__ = [
    "CACHE_VERSION",
    "FIELD_STAGE",
    "METADATA_NAME",
    "ClipEntries",
    "adopt_cache_settings",
    "cache_environments",
    "clip_entries",
    "clip_folder",
    "load_faces",
    "read_metadata",
    "save_faces",
    "training_set",
    "stage_settings",
    "write_image",
    "write_metadata",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 3
"""Bumped when a stage's algorithm or the key changes, so that old entries are not reused
(3: the landmarks are refitted in a canonical crop and tilted faces levelled by an angle search)."""

METADATA_NAME = "manifest.json"

FIELD_STAGE = {
    "align": "faces",
    "face_size": "faces",
    "face_margin": "faces",
    "eye_distance": "faces",
    "face_search_frames": "faces",
    "face_cascade": "faces",
    "magnify": "magnify",
    "magnify_mode": "magnify",
    "magnify_alpha": "magnify",
    "magnify_r1": "magnify",
    "magnify_r2": "magnify",
    "magnify_lambda_c": "magnify",
    "magnify_levels": "magnify",
    "dynamic_image": "texture",
    "image_size": "size",
}
"""The stage that reads each :class:`PreprocessConfig` field. A field missing here is an
error (``tests/test_integrity.py`` checks the table against the config model), so a new
setting cannot silently reuse cache entries made without it."""

_STAGES = {
    "faces": ("faces",),
    "magnify": ("magnify",),
    "texture": ("texture", "size"),
    "motion": ("size",),
    "face": ("size",),
}
"""Which field groups each cached output's own settings are made of."""


def stage_settings(cfg: PreprocessConfig, stage: str) -> dict:
    """The settings of ``cfg`` that ``stage`` (faces, magnify, texture, motion, face) reads itself."""
    groups = _STAGES[stage]
    values = {name: getattr(cfg, name) for name, group in FIELD_STAGE.items() if group in groups}
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
    """``cache_dir/clips/<dataset>/<subject>/<clip>-<k>``, names made file-system safe;
    a subject already prefixed with ``dataset/`` is not prefixed twice; ``<k>`` hashes
    the unsanitised (dataset, subject, clip) so that distinct clips never share a folder."""
    parts = [dataset, *subject.replace("\\", "/").split("/"), clip]
    if len(parts) > 2 and parts[1] == parts[0]:
        parts.pop(1)
    safe = [file_safe(p) or "_" for p in parts]
    key = hashlib.sha1(json.dumps([dataset, subject, clip]).encode()).hexdigest()[:8]
    safe[-1] = f"{safe[-1]}-{key}"
    return Path(cache_dir, "clips", *safe)


def clip_entries(
    folder: Path,
    cfg: PreprocessConfig,
    onset: int,
    apex: int,
    offset: int,
    end: int,
    inputs: str = "",
) -> ClipEntries:
    """The entries of a clip whose frames ``onset..end`` (dataset frame numbers) are used,
    the texture from ``onset..offset`` and the motion / face images from ``onset`` and ``apex``;
    ``inputs`` is the :func:`~msmmt.core.io.file_digest` of the frames onset..end."""
    faces = {"faces": stage_settings(cfg, "faces"), "frames": [onset, end], "inputs": inputs}
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_metadata(manifest: Path, cfg: PreprocessConfig, environments: list[dict | None]) -> Path:
    """Write ``manifest.json`` beside ``manifest``: the settings, versions, the CSV's hash and the
    environments that computed the cache's clips (:func:`cache_environments`)."""
    return atomic_write_json(
        manifest.with_name(METADATA_NAME),
        {
            "msmmt_version": __version__,
            "cache_version": CACHE_VERSION,
            "manifest": manifest.name,
            "manifest_sha256": _sha256(manifest),
            "preprocess": cfg.model_dump(mode="json"),
            "environments": environments,
        },
    )


def cache_environments(cache_dir: Path, previous: dict | None, computed: bool, reused: bool) -> list[dict | None]:
    """The environments that computed the clips of ``cache_dir`` after a run that ``computed``
    clips and ``reused`` cached ones, given the metadata ``previous`` read before it (None: no
    readable metadata; an older cache's lacks the list, its environment counts as unknown, None).

    When the list holds more than one, the cache mixes clips computed with different libraries
    or CPUs, and a warning names how the first differs from the current one.
    """
    earlier: list[dict | None] = []
    if reused:
        earlier = list(previous.get("environments", [None])) if previous else [None]
    current = environment()
    envs = earlier + ([current] if computed and current not in earlier else [])
    if len(envs) > 1:
        first = envs[0]
        how = "; ".join(differences(first, current)) if first is not None else "the first was not recorded"
        log.warning(
            "%s: the cache holds clips computed in %d environments (%s); delete it and preprocess "
            "again to compute every clip in this one", cache_dir, len(envs), how)
    return envs


def read_metadata(data: str | Path) -> dict | None:
    """The metadata of the manifest ``data`` (a cache folder or its CSV); None when it has none.

    Raises ConfigError when the metadata is unreadable or describes another manifest
    (e.g. a preprocessing run killed between writing the two).
    """
    data = Path(data)
    manifest = data / "manifest.csv" if data.is_dir() else data
    path = manifest.with_name(METADATA_NAME)
    if not path.is_file() or not manifest.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
        settings = PreprocessConfig.model_validate(meta["preprocess"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: unreadable cache metadata ({err}); rerun msmmt preprocess") from None
    if meta.get("manifest") != manifest.name:  # it describes another CSV of that folder
        return None
    if meta.get("manifest_sha256") != _sha256(manifest):
        raise ConfigError(
            f"{path}: does not describe {manifest} (its hash differs: edited, or an interrupted "
            "run?); rerun msmmt preprocess"
        )
    return {**meta, "preprocess": settings}


def adopt_cache_settings(cfg: Config, data: str | Path) -> Config:
    """``cfg`` with the preprocess settings the cache ``data`` was made with.

    A preprocess key the config sets explicitly (in its YAML or with ``--set``) to
    another value than the cache's is a ConfigError naming the keys; keys left to
    their defaults take the cache's values. A manifest without metadata (made by
    hand or by an older msmmt) leaves ``cfg`` as it is, with a warning.
    """
    meta = read_metadata(data)
    if meta is None:
        log.warning("%s: no cache metadata; assuming the config's preprocess settings", data)
        return cfg
    cached: PreprocessConfig = meta["preprocess"]
    given = cfg.preprocess.model_fields_set if "preprocess" in cfg.model_fields_set else set()
    clash = sorted(k for k in given if getattr(cfg.preprocess, k) != getattr(cached, k))
    if clash:
        shown = ", ".join(
            f"preprocess.{k} (config {getattr(cfg.preprocess, k)!r}, cache {getattr(cached, k)!r})"
            for k in clash
        )
        raise ConfigError(
            f"{data}: the cache was made with other preprocessing settings: {shown}; "
            "use the cache's settings or preprocess again with yours"
        )
    try:
        return Config.model_validate({**cfg.model_dump(), "preprocess": cached.model_dump()})
    except ValidationError as err:
        raise ConfigError(f"{data}: the cache's preprocess settings do not fit the config: {err}") from None


def training_set(
    cfg: Config, data: str | Path, dataset: str = "precomputed"
) -> tuple[Config, list[Sample]]:
    """The samples training reads from ``data`` and ``cfg`` with the settings they were made with.

    :func:`msmmt.data.readers.read_for_training` (bad data fails first), then, for a cache
    (``precomputed``), :func:`adopt_cache_settings`: what ``msmmt train`` and ``msmmt loso``
    do, so that a checkpoint or run records the preprocessing its images had.
    """
    samples = read_for_training(dataset, data, cfg.data)
    if dataset == "precomputed":
        cfg = adopt_cache_settings(cfg, data)
    return cfg, samples


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
