"""Tiny dataset folders in the official layouts, built by the tests (nothing downloaded).

Every frame is a uniform image whose grey level :func:`frame_value` encodes its
frame number, so tests can check that frames come back in number order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import openpyxl

CASME2_HEADER = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
SAMM_HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
    "Estimated Emotion",
)
SAMM_PREAMBLE_ROWS = 13


def frame_value(number: int) -> int:
    """Grey level of frame ``number`` (distinct for neighbouring numbers, far from 0 and 255)."""
    return 20 + (number * 23) % 200


def write_image(path: Path, value: int | Sequence[int], size: int = 8, grey: bool = False) -> Path:
    """A uniform size x size image; ``value`` is a grey level or a BGR triple."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if grey:
        image = np.full((size, size), value, np.uint8)
    else:
        image = np.empty((size, size, 3), np.uint8)
        image[:] = value
    assert cv2.imwrite(str(path), image), path
    return path


def write_frames(
    folder: Path,
    numbers: Iterable[int],
    name: str = "img{n}.jpg",
    grey: bool = False,
    size: int = 8,
) -> list[Path]:
    """Frames ``name.format(n=number)`` of value :func:`frame_value` in ``folder``."""
    return [
        write_image(folder / name.format(n=n), frame_value(n), size=size, grey=grey)
        for n in numbers
    ]


def write_xlsx(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    """A one-sheet workbook with ``rows`` from row 1 (None leaves a cell empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None:
                sheet.cell(row=r, column=c, value=value)
    book.save(path)
    return path


@dataclass
class Coded:
    """One clip of a coding sheet: the cells as written and the frames on disk."""

    subject: object
    clip: str
    onset: object
    apex: object
    offset: object
    emotion: str
    numbers: Sequence[int] = field(default_factory=lambda: range(1, 7))
    aus: str = "12"


def make_casme2(
    root: Path,
    clips: Sequence[Coded],
    sheet: Path | None = None,
    frame_name: str = "img{n}.jpg",
    write_folders: bool = True,
) -> Path:
    """``root/subXX/<clip>/img<n>.jpg`` and the coding sheet (default ``root/CASME2-coding-test.xlsx``)."""
    sheet = sheet or root / "CASME2-coding-test.xlsx"
    rows: list[Sequence[object]] = [CASME2_HEADER]
    for c in clips:
        rows.append((c.subject, c.clip, c.onset, c.apex, c.offset, c.aus, c.emotion))
        if write_folders:
            number = int(str(c.subject).lower().removeprefix("sub"))
            write_frames(root / f"sub{number:02d}" / c.clip, c.numbers, frame_name)
    write_xlsx(sheet, rows)
    return sheet


def _samm_preamble() -> list[Sequence[object]]:
    """:data:`SAMM_PREAMBLE_ROWS` rows of free text, two of them decoys holding header words."""
    rows: list[Sequence[object]] = [
        ("SAMM micro-movement FACS codes",),
        ("Subject numbers refer to the folder names",),  # a decoy holding a header word
        (),
        ("Columns:", "Subject", "Filename"),  # another decoy, incomplete
    ]
    return rows + [(f"free text line {i}",) for i in range(len(rows), SAMM_PREAMBLE_ROWS)]


def make_samm(
    root: Path, clips: Sequence[Coded], sheet: Path | None = None, preamble: bool = True
) -> Path:
    """``root/006/006_1_2/006_<nnnnn>.jpg`` (greyscale) and the FACS codes sheet, whose header
    row sits below :data:`SAMM_PREAMBLE_ROWS` rows of free text (on row 1 without ``preamble``,
    as in the dated ``SAMM_20181215_Micro_FACS_Codes_v2.xlsx``)."""
    sheet = sheet or root / "SAMM_Micro_FACS_Codes_v2.xlsx"
    rows = _samm_preamble() if preamble else []
    rows.append(SAMM_HEADER)
    for c in clips:
        rows.append(
            (c.subject, c.clip, "1", c.onset, c.apex, c.offset, 10, "Micro", c.aus, "", c.emotion)
        )
        subject = f"{int(c.subject):03d}"
        write_frames(root / subject / c.clip, c.numbers, f"{subject}_{{n:05d}}.jpg", grey=True)
    write_xlsx(sheet, rows)
    return sheet


def make_smic(hs: Path, clips: Sequence[tuple[str, str, str, Sequence[int]]]) -> Path:
    """``hs/sN/micro/<emotion>/<clip>/image<n>.bmp`` for (subject, emotion, clip, numbers)."""
    for subject, emotion, clip, numbers in clips:
        write_frames(hs / subject / "micro" / emotion / clip, numbers, "image{n}.bmp")
    return hs


def write_video(path: Path, values: Sequence[int], fourcc: str, size: int = 16) -> Path:
    """A video whose frame k is uniform grey ``values[k]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (size, size))
    assert writer.isOpened(), f"cannot write {fourcc} video {path}"
    for v in values:
        writer.write(np.full((size, size, 3), v, np.uint8))
    writer.release()
    return path


def make_composite_release(
    root: Path,
    rows: Sequence[tuple[str, str, str, object, str]],
    flow_names: dict[int, str] | None = None,
    csv_name: str = "combined_3class.csv",
) -> tuple[Path, Path, Path]:
    """The shared composite layout: a CSV (dataset, sub, filename_o, label, imagename),
    ``root/apex_crops/<imagename>`` and ``root/uv_strain/<sub>_<filename_o>.png``.

    ``flow_names`` replaces the flow file name of row i (e.g. with stray whitespace).
    Apex image i has value 10 + i, flow image i value 100 + i.
    """
    apex_dir, flow_dir = root / "apex_crops", root / "uv_strain"
    lines = ["dataset,sub,filename_o,label,imagename"]
    for i, (dataset, sub, clip, label, imagename) in enumerate(rows):
        lines.append(f"{dataset},{sub},{clip},{label},{imagename}")
        apex_name = imagename if Path(imagename).suffix else f"{imagename}.jpg"
        write_image(apex_dir / apex_name, 10 + i)
        flow_name = (flow_names or {}).get(i, f"{sub}_{clip}.png")
        write_image(flow_dir / flow_name, 100 + i)
    csv_path = root / csv_name
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path, apex_dir, flow_dir
