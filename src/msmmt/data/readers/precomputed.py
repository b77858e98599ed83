"""Precomputed modality images listed in a manifest CSV (the preprocessing cache's output).

Columns: ``dataset,subject,clip,label,texture_image,motion_image`` (the names of the
:class:`~msmmt.core.records.Sample` fields they fill) and, optional (manifests written
before they existed lack them), ``apex,apex_source``: the apex frame the images were
made with and how it was obtained, one of :data:`APEX_SOURCES` (kept in
``Sample.extra["apex_source"]``). Manifests written before the
columns were renamed, with ``sample`` and ``flow_image`` instead, are still read.
Image paths are relative to the CSV's folder or absolute. ``texture_image`` is the
texture input (dynamic image, or an apex crop standing in for it), ``motion_image`` the
3-channel (u, v, strain) image. A subject without a ``dataset/`` prefix gets one, so
subject ids stay distinct across datasets. Samples carry the two images and no frames.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from msmmt.core.io import atomic_path
from msmmt.core.labels import KNOWN_EMOTIONS
from msmmt.core.names import squash
from msmmt.core.records import DatasetError, RowProblem, Sample, SheetRowsError
from msmmt.data.readers._frames import existing, readable_image
from msmmt.data.readers._sheet import Row, read_table

__all__ = ["APEX_SOURCES", "MANIFEST_COLUMNS", "MANIFEST_NAME", "read_precomputed", "write_manifest"]

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("dataset", "subject", "clip", "label", "texture_image", "motion_image")
APEX_COLUMNS = ("apex", "apex_source")
"""Optional columns: the apex frame number the images were made with, and its source."""
APEX_SOURCES = ("annotated", "motion", "middle")
"""How a clip's apex was obtained: annotated; estimated from the facial motion (the peak,
:func:`msmmt.preprocess.clip.estimate_apex`) where the annotation has none; the middle
frame of onset..offset where the annotation has none and it was not estimated."""
_LEGACY_NAMES = {"clip": "sample", "motion_image": "flow_image"}
"""Earlier names of renamed columns."""


def _column_names(path: Path) -> dict[str, str]:
    """Column key -> name in this file: today's names, or the legacy ones for an old manifest."""
    names = {c: c for c in MANIFEST_COLUMNS}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = {squash(c) for c in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error):
        return names  # read_table reports the problem
    legacy = {squash(n) for n in _LEGACY_NAMES.values()}
    if header & legacy and not header & {squash(n) for n in _LEGACY_NAMES}:
        names.update(_LEGACY_NAMES)
    return names


def read_precomputed(root: str | Path) -> list[Sample]:
    """Samples of the manifest ``root`` (the CSV, or a folder holding ``manifest.csv``), in row order.

    Every unusable row (one whose image is missing or does not decode, too) is reported at
    once in a :class:`SheetRowsError`.
    """
    path = existing(root, "manifest")
    if path.is_dir():
        path = existing(path / MANIFEST_NAME, "manifest")
    folder = path.absolute().parent
    samples: list[Sample] = []
    problems: list[RowProblem] = []
    seen: dict[tuple[str, str], int] = {}
    names = _column_names(path)
    for row in read_table(path, names, {c: c for c in APEX_COLUMNS}):
        try:
            samples.append(_row_sample(row, folder, seen, names))
        except DatasetError as err:
            problems.append(
                RowProblem(row.text("dataset"), row.text("subject"), row.text("clip"), str(err))
            )
    if problems:
        raise SheetRowsError(problems, samples)
    return samples


def _row_sample(
    row: Row, folder: Path, seen: dict[tuple[str, str], int], names: dict[str, str]
) -> Sample:
    """The sample of one manifest row; a DatasetError naming the row if it is unusable."""
    values = {c: row.text(c) for c in MANIFEST_COLUMNS}
    empty = [names[c] for c, v in values.items() if not v]
    if empty:
        raise DatasetError(f"{row.where}: empty {', '.join(empty)}")
    dataset = values["dataset"].lower()
    subject = values["subject"] if "/" in values["subject"] else f"{dataset}/{values['subject']}"
    key = (subject, values["clip"])
    if key in seen:
        raise DatasetError(
            f"{row.where}: duplicate clip {subject}/{values['clip']} (also on row {seen[key]})"
        )
    seen[key] = row.number
    label = values["label"].lower()
    if label not in KNOWN_EMOTIONS:
        raise DatasetError(f"{row.where}: unknown label {values['label']!r}")
    images = {}
    for column in ("texture_image", "motion_image"):
        image = Path(values[column])
        image = image if image.is_absolute() else folder / image
        images[column] = readable_image(image, f"{row.where}: {names[column]}")
    source = row.text("apex_source")
    if source and source not in APEX_SOURCES:
        raise DatasetError(f"{row.where}: apex_source {source!r} is not one of {', '.join(APEX_SOURCES)}")
    return Sample(
        dataset=dataset,
        subject=subject,
        clip=values["clip"],
        label=label,
        apex=row.frame("apex", "apex"),
        apex_estimated=source in ("motion", "middle"),
        texture_image=images["texture_image"],
        motion_image=images["motion_image"],
        extra={"row": row.where} | ({"apex_source": source} if source else {}),
    )


def _apex_cells(sample: Sample) -> tuple[object, str]:
    """The ``apex`` and ``apex_source`` cells of ``sample`` ('' where unknown)."""
    if sample.apex is None:
        return "", ""
    fallback = "middle" if sample.apex_estimated else "annotated"
    return sample.apex, sample.extra.get("apex_source") or fallback


def _relative(image: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(image.absolute(), folder)).as_posix()
    except ValueError:  # another drive on Windows
        return str(image.absolute())


def write_manifest(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write the manifest of ``samples`` (each with both images) to ``path``, atomically.

    Image paths are written relative to the manifest's folder.
    """
    path = Path(path)
    folder = path.absolute().parent
    rows = []
    for s in samples:
        if s.texture_image is None or s.motion_image is None:
            raise ValueError(f"{s.key}: a manifest row needs both texture_image and motion_image")
        rows.append(
            (
                s.dataset,
                s.subject,
                s.clip,
                s.label,
                _relative(Path(s.texture_image), folder),
                _relative(Path(s.motion_image), folder),
                *_apex_cells(s),
            )
        )
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS + APEX_COLUMNS)
        writer.writerows(rows)
    return path
