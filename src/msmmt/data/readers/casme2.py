"""CASME II (and the synthetic set written by ``msmmt synth``, which uses its layout).

Layout: ``ROOT/subXX/EPxx_xx[f]/imgN.jpg`` (raw release) or ``reg_imgN.jpg``
(cropped release), and the coding sheet ``CASME2-coding-*.xlsx`` with the columns
Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated
Emotion. ``ROOT`` may also be a folder holding the subject folders up to two
levels down (e.g. ``CASME2`` holding ``CASME2_RAW_selected``). The sheet, unless
given, is looked for beside the subject folders, in their parent, in ``ROOT`` and ``ROOT``'s
parent. Subject ids are ``casme2/sub01``; labels are the sheet's emotions in lower
case. Clips without an apex get the middle of onset..offset provisionally
(``apex_estimated``, logged as a warning); preprocessing replaces it by the peak of the
facial motion. Reference: Yan et al., "CASME II: An improved spontaneous
micro-expression database and the baseline evaluation", PLoS ONE 9(1), 2014.
"""

from __future__ import annotations

from pathlib import Path

from msmmt.core.records import Sample
from msmmt.data.readers._coded import coded_sheet, read_coded, subject_number
from msmmt.data.readers._frames import find_root, has_subfolder

__all__ = ["read_casme2"]

SHEET_PATTERNS = ("CASME2-coding*.xlsx", "CASME2-coding*.xlsm", "CASME2-coding*.csv")


def read_casme2(
    root: str | Path, annotations: str | Path | None = None, dataset: str = "casme2"
) -> list[Sample]:
    """Samples of a CASME II-layout folder, in sheet order; ``dataset`` names the set
    (``synthetic`` for ``msmmt synth`` output) and prefixes the subject ids."""
    root = Path(root)
    data_root = find_root(root, has_subfolder(r"sub\d+"), "CASME II subject folders (subXX)")
    sheet = coded_sheet(root, data_root, annotations, SHEET_PATTERNS, "CASME II coding")
    return read_coded(data_root, sheet, dataset, lambda row: f"sub{subject_number(row, 'sub'):02d}")
