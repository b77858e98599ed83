"""Clips listed in a FACS coding sheet (CASME II, SAMM): one sheet row -> one Sample.

Both sheets carry Subject, Filename, Onset / Apex / Offset frame, Action Units and
Estimated Emotion; the frames of row (subject, clip) live in
``ROOT/<subject folder>/<clip>/``. A missing apex ("/", blank, -1) is provisionally
the middle of onset..offset (``apex_estimated``; preprocessing and the predictor replace
it by the peak of the facial motion), a missing onset/offset the first/last frame; every
such gap is logged as a warning naming the clip and row, and recorded in
``Sample.extra["assumed"]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from msmmt.core.keyframes import resolve_marks
from msmmt.core.labels import KNOWN_EMOTIONS
from msmmt.core.records import DatasetError, RowProblem, Sample, SheetRowsError
from msmmt.data.readers._frames import numbered_frames
from msmmt.data.readers._sheet import Row, find_file, read_table

log = logging.getLogger(__name__)


def coded_sheet(
    root: Path, data_root: Path, annotations: str | Path | None, patterns, what: str
) -> Path:
    """The coding sheet: ``annotations`` if given, else the one file matching ``patterns``
    beside the subject folders, in their parent, in ``root`` or in ``root``'s parent."""
    if annotations is not None:
        return Path(annotations)
    return find_file([data_root, data_root.parent, root, root.parent], patterns, what)

COLUMNS = {
    "subject": "Subject",
    "clip": "Filename",
    "onset": "Onset Frame",
    "apex": "Apex Frame",
    "offset": "Offset Frame",
    "emotion": "Estimated Emotion",
}
OPTIONAL = {"aus": "Action Units"}


def subject_number(row: Row, prefix: str = "") -> int:
    """The Subject cell as a number: 1, '01', 6.0 or (with ``prefix='sub'``) 'sub01'."""
    text = row.text("subject")
    match = re.fullmatch(rf"(?:{prefix})?0*(\d+)", text, flags=re.IGNORECASE)
    if match is None:
        raise DatasetError(f"{row.where}: Subject {text!r} is not a subject number")
    return int(match.group(1))


def read_coded(
    root: Path,
    sheet: Path,
    dataset: str,
    subject_folder: Callable[[Row], str],
) -> list[Sample]:
    """Samples of every row of ``sheet``, in sheet order.

    ``subject_folder(row)`` names the row's subject folder under ``root``; it is also
    the subject id after ``dataset/``. Every unusable row (bad cell, missing frame
    folder, duplicate) is reported at once in a :class:`SheetRowsError`, which also
    carries the good rows' samples.
    """
    samples: list[Sample] = []
    problems: list[RowProblem] = []
    seen: dict[tuple[str, str], Row] = {}
    for row in read_table(sheet, COLUMNS, OPTIONAL):
        try:
            samples.append(_row_sample(row, root, dataset, subject_folder, seen))
        except DatasetError as err:
            subject = _subject_id(row, dataset, subject_folder)
            problems.append(RowProblem(dataset, subject, row.text("clip"), str(err)))
    if problems:
        raise SheetRowsError(problems, samples)
    return samples


def _subject_id(row: Row, dataset: str, subject_folder: Callable[[Row], str]) -> str:
    try:
        return f"{dataset}/{subject_folder(row)}"
    except DatasetError:  # the Subject cell itself is bad
        return f"{dataset}/{row.text('subject')}"


def _row_sample(
    row: Row,
    root: Path,
    dataset: str,
    subject_folder: Callable[[Row], str],
    seen: dict[tuple[str, str], Row],
) -> Sample:
    folder_name = subject_folder(row)
    clip = row.text("clip")
    if not clip:
        raise DatasetError(f"{row.where}: empty Filename")
    if (folder_name, clip) in seen:
        raise DatasetError(
            f"{row.where}: duplicate clip {folder_name}/{clip} "
            f"(also on row {seen[folder_name, clip].number})"
        )
    seen[folder_name, clip] = row
    emotion = row.text("emotion").lower()
    if emotion not in KNOWN_EMOTIONS:
        raise DatasetError(
            f"{row.where}: unknown emotion {row.text('emotion')!r} for {folder_name}/{clip}; "
            f"known: {', '.join(sorted(KNOWN_EMOTIONS))}"
        )
    folder = root / folder_name / clip
    if not folder.is_dir():
        raise DatasetError(f"{row.where}: frame folder {folder} does not exist")
    try:
        frames, numbers = numbered_frames(folder)
    except DatasetError as exc:
        raise DatasetError(f"{row.where}: {exc}") from None
    where = f"{row.where} ({folder_name}/{clip})"
    coded_apex = row.frame("apex", "apex frame")
    onset, apex, offset, assumed = resolve_marks(
        numbers,
        row.frame("onset", "onset frame"),
        coded_apex,
        row.frame("offset", "offset frame"),
        where,
    )
    extra = {"action_units": row.text("aus"), "row": row.where}
    if assumed:
        extra["assumed"] = "; ".join(assumed)
        log.warning("%s: %s: annotation incomplete: %s", dataset, where, extra["assumed"])
    return Sample(
        dataset=dataset,
        subject=f"{dataset}/{folder_name}",
        clip=clip,
        label=emotion,
        frames=frames,
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        apex_estimated=coded_apex is None,
        extra=extra,
    )
