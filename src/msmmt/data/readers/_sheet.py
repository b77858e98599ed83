"""Annotation tables (xlsx or csv) whose header row is found by its column names.

SAMM's coding sheet opens with about 13 rows of free text before the header, so
no reader assumes the header is on row 1: :func:`read_table` takes the first row
holding every required column name. Names match ignoring case, spaces and
punctuation (``OnsetFrame`` = ``Onset Frame``, ``filename_o`` = ``Filename O``).
Each row keeps its number in the file (1-based, as a spreadsheet shows it), so
errors can say ``CASME2-coding.xlsx row 17``.
"""

from __future__ import annotations

import csv
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msmmt.core.names import squash
from msmmt.core.records import DatasetError

_MISSING = {"", "/", "-", "--", "n/a", "na", "nan", "none", "null"}


@dataclass(frozen=True)
class Row:
    """One data row: ``values`` keyed by the caller's column keys."""

    path: Path
    number: int
    values: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path} row {self.number}"

    def text(self, key: str) -> str:
        """The cell as stripped text ('' when empty); integral floats lose their '.0'."""
        value = self.values.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    def frame(self, key: str, column: str) -> int | None:
        """A frame-number cell; None when blank or a placeholder such as '/' or -1."""
        text = self.text(key)
        if text.lower() in _MISSING:
            return None
        try:
            number = float(text)
        except ValueError:
            raise DatasetError(f"{self.where}: {column} {text!r} is not a frame number") from None
        if not number.is_integer():
            raise DatasetError(f"{self.where}: {column} {text!r} is not a whole frame number")
        return int(number) if number >= 0 else None


def _raw_rows(path: Path) -> list[list[tuple[int, tuple[Any, ...]]]]:
    """Each sheet of ``path`` as a list of (row number, cells); a CSV is one sheet."""
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                rows = [(i, tuple(r)) for i, r in enumerate(csv.reader(f), start=1)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DatasetError(f"{path}: cannot read the table ({exc})") from exc
        return [rows]
    if suffix not in {".xlsx", ".xlsm"}:
        raise DatasetError(f"{path}: unsupported table format {suffix!r} (use .xlsx or .csv)")
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a damaged file
        raise DatasetError(f"{path}: cannot read the spreadsheet ({exc})") from exc
    sheets = []
    try:
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # some writers store a wrong sheet size
            sheets.append(list(enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)))
        return sheets
    finally:
        book.close()


def read_table(
    path: str | Path,
    columns: Mapping[str, str],
    optional: Mapping[str, str] | None = None,
) -> list[Row]:
    """Rows of the table at ``path`` below its header row.

    ``columns`` maps the caller's keys to the required column names, ``optional``
    likewise for columns that may be absent (their key is then missing from
    ``Row.values``). Blank rows are skipped. Raises DatasetError naming the file and
    the missing columns when no row holds them all.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} does not exist")
    optional = dict(optional or {})
    wanted = {squash(name): key for key, name in {**columns, **optional}.items()}
    required = {squash(name) for name in columns.values()}
    best: tuple[int, int, set[str]] | None = None  # (found, row number, missing)
    for rows in _raw_rows(path):
        for i, (number, cells) in enumerate(rows):
            names = [squash(c) for c in cells]
            found = required & set(names)
            if found == required:
                index = {wanted[n]: j for j, n in enumerate(names) if n in wanted}
                return [
                    Row(path, num, {k: (cs[j] if j < len(cs) else None) for k, j in index.items()})
                    for num, cs in rows[i + 1 :]
                    if any(c is not None and str(c).strip() for c in cs)
                ]
            if best is None or len(found) > best[0]:
                best = (len(found), number, required - found)
    missing = [name for name in columns.values() if squash(name) in (best[2] if best else required)]
    closest = f" (closest: row {best[1]})" if best and best[0] else ""
    raise DatasetError(
        f"{path}: no header row with the columns {', '.join(columns.values())}; "
        f"missing {', '.join(missing)}{closest}"
    )


def find_file(folders: Iterable[Path], patterns: Sequence[str], what: str) -> Path:
    """The one file matching any of ``patterns`` (any case) directly in one of ``folders``.

    Folders are tried in order; the first that holds matches decides. Raises
    DatasetError when none matches or a folder holds several.
    """
    tried = []
    for folder in dict.fromkeys(folders):
        tried.append(str(folder))
        if not folder.is_dir():
            continue
        hits = sorted(
            p
            for p in folder.iterdir()
            if p.is_file()
            and not p.name.startswith((".", "~$"))
            and any(fnmatch.fnmatch(p.name.lower(), pat.lower()) for pat in patterns)
        )
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise DatasetError(
                f"several {what} files in {folder}: {', '.join(h.name for h in hits)}; "
                "pass the one to use as annotations"
            )
    raise DatasetError(
        f"no {what} file ({' or '.join(patterns)}) in {' or '.join(tried)}; "
        "pass its path as annotations"
    )
