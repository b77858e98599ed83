"""Dataset readers: every supported layout -> a list of :class:`msmmt.core.records.Sample`.

``read_dataset(name, root, annotations=None)`` dispatches on ``name``:

- ``casme2``: CASME II frame folders and coding sheet (:mod:`.casme2`);
- ``synthetic``: the same layout as written by ``msmmt synth`` (dataset ``synthetic``);
- ``samm``: SAMM frame folders and FACS codes sheet (:mod:`.samm`);
- ``smic``: SMIC-HS frame folders, labels from folder names (:mod:`.smic`);
- ``composite``: the three above mapped to the MEGC2019 classes (:mod:`.composite`);
  ``annotations`` is then a dict ``{"casme2": sheet, "samm": sheet}``;
- ``precomputed``: a manifest CSV of modality images (:mod:`.precomputed`);
- ``composite-release``: the commonly shared composite images and CSV
  (:mod:`.composite_release`); ``annotations`` is then the CSV.

``read_clip`` reads one clip (frame folder or video), ``load_frames`` decodes a
sample's frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from msmmt.config import DataConfig
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers._frames import existing
from msmmt.data.readers.casme2 import read_casme2
from msmmt.data.readers.clip import load_frames, read_clip
from msmmt.data.readers.composite import filter_class_set, read_composite
from msmmt.data.readers.composite_release import read_composite_release
from msmmt.data.readers.precomputed import read_precomputed, write_manifest
from msmmt.data.readers.samm import read_samm
from msmmt.data.readers.smic import read_smic

__all__ = [
    "DATASETS",
    "IMAGE_DATASETS",
    "filter_class_set",
    "load_frames",
    "read_clip",
    "read_dataset",
    "read_for_training",
    "write_manifest",
]

DATASETS = ("casme2", "samm", "smic", "composite", "precomputed", "composite-release", "synthetic")
IMAGE_DATASETS = ("precomputed", "composite-release")
"""The readers whose samples carry the modality images (what training reads); the others
read frames, for ``msmmt preprocess``."""

_NO_SHEET = ("smic", "precomputed")


def read_dataset(
    name: str,
    root: str | Path,
    annotations: str | Path | Mapping[str, str | Path] | None = None,
) -> list[Sample]:
    """Samples of dataset ``name`` at ``root`` (see the module docstring for the names)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {', '.join(DATASETS)}")
    root = existing(root, f"{name} dataset root")
    samples = _read(name, root, annotations)
    if not samples:
        raise DatasetError(f"{name} dataset {root}: no samples found")
    return samples


def read_for_training(name: str, root: str | Path, data: DataConfig) -> list[Sample]:
    """Samples of ``name`` at ``root`` as training and evaluation use them.

    ``name`` must be one of :data:`IMAGE_DATASETS` (a reader of frames is a DatasetError
    saying to preprocess first, an unknown name a ValueError). Labels are mapped to
    ``data.class_set`` (samples outside it are left out) and only the datasets in
    ``data.datasets`` are kept; an empty result is a DatasetError.
    """
    if name in DATASETS and name not in IMAGE_DATASETS:
        raise DatasetError(
            f"{name} dataset {root}: raw clips, not the modality images training reads; "
            f"preprocess them first (msmmt preprocess {name} {root}) and use the cache"
        )
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {', '.join(IMAGE_DATASETS)}")
    samples = filter_class_set(read_dataset(name, root), data.class_set)
    if data.datasets is not None:
        samples = [s for s in samples if s.dataset in data.datasets]
    if not samples:
        kept = f" of datasets {data.datasets}" if data.datasets else ""
        raise DatasetError(f"{root}: no clips{kept} in the {data.class_set} class set")
    return samples


def _read(name: str, root: Path, annotations) -> list[Sample]:
    if name == "composite":
        if annotations is not None and not isinstance(annotations, Mapping):
            raise ValueError(
                "composite annotations must be a dict {'casme2': sheet, 'samm': sheet}"
            )
        return read_composite(root, annotations)
    if isinstance(annotations, Mapping):
        raise ValueError(
            f"{name}: takes one coding sheet, not per-dataset sheets (NAME=FILE is for composite)"
        )
    if name in _NO_SHEET and annotations is not None:
        raise ValueError(f"{name} has no annotation file; leave annotations out")
    if name in ("casme2", "synthetic"):
        return read_casme2(root, annotations, dataset=name)
    if name == "samm":
        return read_samm(root, annotations)
    if name == "smic":
        return read_smic(root)
    if name == "precomputed":
        return read_precomputed(root)
    return read_composite_release(root, csv=annotations)
