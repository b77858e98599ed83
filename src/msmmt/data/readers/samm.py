"""SAMM (Spontaneous Actions and Micro-Movements).

Layout: ``ROOT/<subject>/<clip>/<subject>_<frame>.jpg`` (greyscale 2040x1088; e.g.
``006/006_1_2/006_05562.jpg``) and ``SAMM_Micro_FACS_Codes_v2.xlsx``, whose header
row (Subject, Filename, Onset Frame, Apex Frame, Offset Frame, Action Units,
Estimated Emotion) sits about 13 rows below free text; it is found by its column
names. Some releases date the sheet (``SAMM_20181215_Micro_FACS_Codes_v2.xlsx``,
header on row 1); any ``SAMM*Micro_FACS_Codes*`` name is taken. ``ROOT`` may hold
the subject folders up to two levels down. The sheet,
unless given, is looked for beside the subject folders, in their parent, in ``ROOT`` and its
parent. Subject ids are ``samm/006``; labels are the sheet's emotions in lower
case. Reference: Davison et al., "SAMM: A spontaneous micro-facial movement
dataset", IEEE Trans. Affective Computing 9(1), 2018.
"""

from __future__ import annotations

from pathlib import Path

from msmmt.core.records import Sample
from msmmt.data.readers._coded import coded_sheet, read_coded, subject_number
from msmmt.data.readers._frames import find_root, has_subfolder

__all__ = ["read_samm"]

SHEET_PATTERNS = ("SAMM*Micro_FACS_Codes*.xlsx", "SAMM*Micro_FACS_Codes*.csv")


def read_samm(root: str | Path, annotations: str | Path | None = None) -> list[Sample]:
    """Samples of a SAMM folder, in sheet order."""
    root = Path(root)
    data_root = find_root(root, has_subfolder(r"\d{3}"), "SAMM subject folders (e.g. 006)")
    sheet = coded_sheet(root, data_root, annotations, SHEET_PATTERNS, "SAMM FACS codes")
    return read_coded(data_root, sheet, "samm", lambda row: f"{subject_number(row):03d}")
