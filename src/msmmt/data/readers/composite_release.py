"""The composite set as it is commonly shared: per-clip images, no videos.

Layout under ``root`` (found by content, each part overridable):

- a CSV with the columns ``dataset, sub, filename_o, label, imagename``: the source
  dataset (``smic``, ``casme2``, ``samm``, any case), the subject, the clip, the
  class (0 negative, 1 positive, 2 surprise; the names are accepted too) and the
  file name of the clip's apex face crop (with or without extension);
- a folder of apex face crops named by ``imagename``;
- a folder of 3-channel (u, v, strain) images named ``<sub>_<filename_o>.png``.
  Whitespace before the extension is tolerated: the shared release names them
  ``s01_s01_ne_01 .png`` (its CSV also has ``apex`` and ``sub_filename`` columns, unused).

Defaults: the one CSV up to two levels below ``root`` with those columns; the
folder up to three levels below ``root`` holding the first row's apex image
(resp. flow image) -- if several do, the one holding every row's. The apex crop
stands in for the dynamic image (``texture_image``); subject ids are
``<dataset>/<sub>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from msmmt.core.names import squash
from msmmt.core.records import DatasetError, RowProblem, Sample, SheetRowsError
from msmmt.data.readers._frames import (
    IMAGE_EXTENSIONS,
    existing,
    existing_folder,
    readable_image,
)
from msmmt.data.readers._sheet import Row, read_table

__all__ = ["read_composite_release"]

COLUMNS = {c: c for c in ("dataset", "sub", "filename_o", "label", "imagename")}
CLASSES = ("negative", "positive", "surprise")
_DATASETS = {
    "casme2": "casme2",
    "casmeii": "casme2",
    "samm": "samm",
    "smic": "smic",
    "smichs": "smic",
}


def _key(name: str) -> str:
    """File-name key: the name without an image extension, surrounding whitespace removed."""
    name = name.strip()
    path = Path(name)
    return path.stem.strip() if path.suffix.lower() in IMAGE_EXTENSIONS else name


def _images(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]


def _index(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by :func:`_key`; an error if two share a key."""
    index: dict[str, Path] = {}
    for p in _images(folder):
        key = _key(p.name)
        if key in index:
            raise DatasetError(f"{folder}: {index[key].name!r} and {p.name!r} name the same image")
        index[key] = p
    return index


def _folders(root: Path, depth: int) -> list[Path]:
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if len(here.relative_to(root).parts) >= depth:
            dirnames[:] = []
        out.append(here)
    return out


def _find_csv(root: Path) -> Path:
    candidates = sorted(root.glob("*.csv")) + sorted(root.glob("*/*.csv"))
    good = []
    for path in candidates:
        try:
            read_table(path, COLUMNS)
        except DatasetError:
            continue
        good.append(path)
    if len(good) != 1:
        found = ", ".join(str(p) for p in good) if good else "none"
        raise DatasetError(
            f"{root}: expected one CSV with the columns {', '.join(COLUMNS)} "
            f"(up to two levels down), found {found}; give the CSV's path instead of the folder"
        )
    return good[0]


def _find_folder(root: Path, names: list[str], what: str) -> Path:
    keys = {f: {_key(p.name) for p in _images(f)} for f in _folders(root, 3)}
    hits = [f for f, k in keys.items() if names[0] in k]
    if len(hits) > 1:
        hits = [f for f in hits if set(names) <= keys[f]]
    if len(hits) != 1:
        found = ", ".join(str(h) for h in hits) if hits else "none"
        raise DatasetError(
            f"{root}: expected one folder of {what} holding {names[0]!r} "
            f"(up to three levels down), found {found}"
        )
    return hits[0]


def _dataset(row: Row) -> str:
    text = row.text("dataset")
    try:
        return _DATASETS[squash(text)]
    except KeyError:
        raise DatasetError(
            f"{row.where}: unknown dataset {text!r}; expected smic, casme2 or samm"
        ) from None


def _label(row: Row) -> str:
    text = row.text("label").lower()
    if text in CLASSES:
        return text
    if text in {"0", "1", "2"}:
        return CLASSES[int(text)]
    raise DatasetError(f"{row.where}: label {row.text('label')!r} is not 0, 1 or 2")


def _override(root: Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() or path.exists() else root / path


@dataclass(frozen=True)
class _Images:
    """The apex and flow image folders and their images by name."""

    apex_folder: Path
    apex: dict[str, Path]
    flow_folder: Path
    flow: dict[str, Path]


def _row_sample(row: Row, images: _Images, apex_name: str, flow_name: str) -> Sample:
    dataset, sub, clip = _dataset(row), row.text("sub"), row.text("filename_o")
    if not sub or not clip:
        raise DatasetError(f"{row.where}: empty sub or filename_o")
    label = _label(row)
    if apex_name not in images.apex:
        raise DatasetError(
            f"{row.where}: apex image {apex_name!r} not found in {images.apex_folder}"
        )
    if flow_name not in images.flow:
        raise DatasetError(f"{row.where}: flow image {flow_name}.png not found in {images.flow_folder}")
    return Sample(
        dataset=dataset,
        subject=f"{dataset}/{sub}",
        clip=clip,
        label=label,
        texture_image=readable_image(images.apex[apex_name], f"{row.where}: apex image"),
        motion_image=readable_image(images.flow[flow_name], f"{row.where}: flow image"),
        extra={"row": row.where, "texture": "apex"},
    )


def read_composite_release(
    root: str | Path,
    csv: str | Path | None = None,
    apex_dir: str | Path | None = None,
    flow_dir: str | Path | None = None,
) -> list[Sample]:
    """Samples of the composite release under ``root`` (its folder, or its CSV), in CSV row order.

    ``csv``, ``apex_dir`` and ``flow_dir`` override the defaults of the module
    docstring; a relative path that does not exist from the working folder is
    taken from ``root``. Every unusable row is reported at once in a
    :class:`~msmmt.core.records.SheetRowsError`, which also holds the good rows' samples.
    """
    root = existing(root, "dataset root")
    if root.is_file() and csv is None:
        root, csv = root.parent, root
    root = existing_folder(root, "dataset root")
    csv_path = (
        existing(_override(root, csv), "composite CSV") if csv is not None else _find_csv(root)
    )
    rows = read_table(csv_path, COLUMNS)
    if not rows:
        raise DatasetError(f"{csv_path}: no rows")
    apex_names = [_key(r.text("imagename")) for r in rows]
    flow_names = [f"{r.text('sub')}_{r.text('filename_o')}" for r in rows]
    apex_folder = (
        existing_folder(_override(root, apex_dir), "apex image folder")
        if apex_dir is not None
        else _find_folder(root, apex_names, "apex images")
    )
    flow_folder = (
        existing_folder(_override(root, flow_dir), "flow image folder")
        if flow_dir is not None
        else _find_folder(root, flow_names, "flow images")
    )
    images = _Images(apex_folder, _index(apex_folder), flow_folder, _index(flow_folder))
    samples: list[Sample] = []
    problems: list[RowProblem] = []
    seen: dict[tuple[str, str], int] = {}
    for row, apex_name, flow_name in zip(rows, apex_names, flow_names, strict=True):
        try:
            samples.append(_checked_sample(row, images, apex_name, flow_name, seen))
        except DatasetError as err:
            problems.append(
                RowProblem(row.text("dataset"), row.text("sub"), row.text("filename_o"), str(err))
            )
    if problems:
        raise SheetRowsError(problems, samples)
    return samples


def _checked_sample(
    row: Row, images: _Images, apex_name: str, flow_name: str, seen: dict[tuple[str, str], int]
) -> Sample:
    """:func:`_row_sample`, refusing a clip already read from an earlier row."""
    sample = _row_sample(row, images, apex_name, flow_name)
    if (sample.subject, sample.clip) in seen:
        raise DatasetError(
            f"{row.where}: duplicate clip {sample.key} "
            f"(also on row {seen[sample.subject, sample.clip]})"
        )
    seen[sample.subject, sample.clip] = row.number
    return sample
