"""Export clips in the form the MEGC2019 composite is commonly shared (``--dataset composite-release``).

For every sample, msmmt's own preprocessing (:func:`~msmmt.preprocess.batch.preprocess_dataset`:
aligned face, TV-L1 flow onset -> apex, optical strain) under :data:`RELEASE_CONFIG` gives the
``image_size`` x ``image_size`` (u, v, |e|) image (28 x 28, as released); the aligned apex face
from the same cache entry, resized to ``apex_size`` (224), is the apex crop. Written under ``OUT``
(the layout :mod:`msmmt.data.readers.composite_release` reads)::

    composite_release.csv   dataset, sub, filename_o, label (0 negative, 1 positive, 2 surprise), imagename
    apex/<sub>_<clip>_apex.png
    flow/<sub>_<clip>.png

No magnification: the released flow images are computed on the unmagnified onset and apex frames.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from msmmt.config import PreprocessConfig
from msmmt.core.images import read_rgb
from msmmt.core.io import atomic_path
from msmmt.core.records import DatasetError, Sample
from msmmt.ops.scaling import resize_square
from msmmt.preprocess import cache
from msmmt.preprocess.batch import RunSummary, input_fingerprint, preprocess_dataset, sample_range

__all__ = ["CSV_NAME", "RELEASE_CLASSES", "RELEASE_CONFIG", "export_release"]

CSV_NAME = "composite_release.csv"
RELEASE_CLASSES = ("negative", "positive", "surprise")
RELEASE_CONFIG = PreprocessConfig(face_size=128, magnify=False, image_size=28)
"""Faces aligned to 128 px (TV-L1 takes a third of its 224 px time), flow image 28 px."""


def _release_images(sample: Sample, cfg: PreprocessConfig, cache_dir: Path, apex_size: int):
    """(motion image, apex face resized to ``apex_size``) of ``sample``'s cache entry."""
    marks, numbers = sample_range(sample)
    folder = cache.clip_folder(cache_dir, sample.dataset, sample.subject, sample.clip)
    entries = cache.clip_entries(folder, cfg, *numbers, input_fingerprint(sample, marks))
    faces = cache.load_faces(entries.faces)
    if faces is None:
        raise DatasetError(f"{sample.key}: no aligned faces in the cache {folder}")
    apex = resize_square(faces.frames[marks.apex - marks.onset], apex_size)
    return read_rgb(entries.motion), apex


def export_release(
    samples: Sequence[Sample],
    out_dir: str | Path,
    cache_dir: str | Path,
    cfg: PreprocessConfig = RELEASE_CONFIG,
    apex_size: int = 224,
    workers: int = 1,
    progress: bool = False,
) -> RunSummary:
    """Preprocess ``samples`` (labels: composite classes) into ``cache_dir`` and write the
    release form to ``out_dir``; a clip that fails preprocessing is a DatasetError."""
    # the release's apex is the annotated one, or the middle frame (SMIC), as in MEGC2019
    samples = [
        dataclasses.replace(s, apex_estimated=False, extra={**s.extra, "apex_source": "middle"})
        if s.apex_estimated
        else s
        for s in samples
    ]
    summary = preprocess_dataset(samples, cfg, cache_dir, workers, progress)
    if summary.failed:
        raise DatasetError(f"{summary.failed} clips failed preprocessing; see {summary.failures}")
    out_dir = Path(out_dir)
    rows = []
    for sample in samples:
        if sample.label not in RELEASE_CLASSES:
            raise DatasetError(f"{sample.key}: label {sample.label!r} is not a composite class")
        sub = sample.subject.split("/")[-1]
        name = f"{sub}_{sample.clip}"
        motion, apex = _release_images(sample, cfg, Path(cache_dir), apex_size)
        cache.write_image(out_dir / "flow" / f"{name}.png", motion)
        cache.write_image(out_dir / "apex" / f"{name}_apex.png", apex)
        rows.append((sample.dataset, sub, sample.clip, RELEASE_CLASSES.index(sample.label), f"{name}_apex.png"))
    with atomic_path(out_dir / CSV_NAME) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("dataset", "sub", "filename_o", "label", "imagename"))
        writer.writerows(rows)
    return summary
