"""The MEGC2019 composite set (CDE protocol) and mapping samples onto a class set.

Expected layout of ``root`` (folder names matched ignoring case and punctuation by
their start: ``casme2``/``casmeii``, ``samm``, ``smic``)::

    root/
      CASME2/   CASME II as read_casme2 accepts it (subXX folders, possibly one or
                two levels down, e.g. CASME2/CASME2_RAW_selected; the coding sheet)
      SAMM/     SAMM as read_samm accepts it (subject folders, the FACS codes sheet)
      SMIC/     SMIC-HS as read_smic accepts it (SMIC/HS/sN/micro/...)

``annotations`` may be a dict ``{"casme2": sheet, "samm": sheet}`` (either key
optional); sheets not given are found by each reader. Each clip's emotion is
mapped to positive / negative / surprise with
``map_label(dataset, emotion, "composite")``; clips it leaves out (others, CASME II
fear and sadness) are dropped, and so are the CASME II clips of :data:`DROPPED`,
which the official list does not hold, to give its 442 clips of 68 subjects (SMIC 164,
CASME II 145, SAMM 133). ``Sample.label`` is the composite class and
``extra["emotion"]`` the dataset's emotion. Reference: See et al., "MEGC 2019 --
the second facial micro-expressions grand challenge", IEEE FG 2019.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from msmmt.core.labels import map_label
from msmmt.core.names import squash
from msmmt.core.records import DatasetError, Sample, SheetRowsError
from msmmt.data.readers._frames import existing_folder
from msmmt.data.readers.casme2 import read_casme2
from msmmt.data.readers.samm import read_samm
from msmmt.data.readers.smic import read_smic

__all__ = ["DROPPED", "filter_class_set", "read_composite"]

DROPPED = frozenset(
    {("casme2/sub04", "EP12_01f"), ("casme2/sub05", "EP09_05f"), ("casme2/sub24", "EP02_07")}
)
"""(subject, clip) of the CASME II clips left out of the composite set: the official list
(MEGC2019 ``combined_3class_gt.csv``) does not hold them. ``sub04/EP12_01f`` has no apex
('/'), ``sub05/EP09_05f`` its apex on its onset; ``sub05/EP12_03f`` is in the list (as
surprise) and stays."""

_PARTS = {"casme2": ("casme2", "casmeii"), "samm": ("samm",), "smic": ("smic",)}


def filter_class_set(samples: Iterable[Sample], class_set: str) -> list[Sample]:
    """Samples whose emotion maps into ``class_set``, with ``label`` set to the class.

    The emotion is ``extra["emotion"]`` when present (already mapped samples), else
    ``label``; it is kept in ``extra["emotion"]``. Samples that
    :func:`msmmt.core.labels.map_label` leaves out are dropped.
    """
    out = []
    for s in samples:
        emotion = s.extra.get("emotion", s.label)
        label = map_label(s.dataset, emotion, class_set)
        if label is not None:
            out.append(dataclasses.replace(s, label=label, extra={**s.extra, "emotion": emotion}))
    return out


def _part_folder(root: Path, part: str) -> Path:
    prefixes = _PARTS[part]
    hits = [
        c
        for c in sorted(root.iterdir())
        if c.is_dir() and squash(c.name).startswith(prefixes)
    ]
    if len(hits) != 1:
        found = f"several: {', '.join(h.name for h in hits)}" if hits else "none"
        raise DatasetError(
            f"composite root {root}: expected one {part.upper()} folder (named like "
            f"{prefixes[0].upper()}), found {found}"
        )
    return hits[0]


def read_composite(
    root: str | Path, annotations: Mapping[str, str | Path] | None = None
) -> list[Sample]:
    """The composite set: CASME II, SAMM and SMIC-HS samples under ``root``, in that order."""
    root = existing_folder(root, "dataset root")
    sheets = dict(annotations or {})
    unknown = set(sheets) - {"casme2", "samm"}
    if unknown:
        raise ValueError(
            f"composite annotations: unknown keys {sorted(unknown)}; use 'casme2' and 'samm'"
        )
    samples, problems = [], []
    for read in (
        lambda: read_casme2(_part_folder(root, "casme2"), sheets.get("casme2")),
        lambda: read_samm(_part_folder(root, "samm"), sheets.get("samm")),
        lambda: read_smic(_part_folder(root, "smic")),
    ):
        try:
            samples += read()
        except SheetRowsError as err:  # gather every part's bad rows before reporting
            samples += err.samples
            problems += err.problems
    kept = filter_class_set([s for s in samples if (s.subject, s.clip) not in DROPPED], "composite")
    if problems:
        raise SheetRowsError(problems, kept)
    return kept
