"""SMIC-HS (the 100 fps high-speed part of SMIC).

Layout: ``ROOT/HS/sN/micro/{positive,negative,surprise}/<clip>/image*.bmp`` (e.g.
``HS/s1/micro/negative/s1_ne_01/``; ``reg_image*.bmp`` in the cropped release); ``ROOT``
may also be the ``HS`` folder itself, or hold a folder named ``HS`` up to two levels
down (e.g. ``SMIC/SMIC_all_raw/HS`` beside ``VIS`` and ``NIR``, which are ignored). SMIC-E
(``HS_long/SMIC-HS-E/HS/s01/<clip>/`` and ``SMIC-HS-E_annotation.xlsx``) is another
layout, not read here. There is
no annotation sheet: labels come from the folder names, onset and offset are the
first and last frames and the apex, provisionally, the middle one (``apex_estimated=True``,
recorded in ``extra["assumed"]``; expected, so not logged); preprocessing replaces it by
the peak of the facial motion. Subject ids are
``smic/s1``. Reference: Li et al., "A spontaneous micro-expression database:
inducement, collection and baseline", IEEE FG 2013.
"""

from __future__ import annotations

import re
from pathlib import Path

from msmmt.core.keyframes import resolve_marks
from msmmt.core.records import DatasetError, RowProblem, Sample, SheetRowsError
from msmmt.data.readers._frames import (
    existing_folder,
    find_root,
    natural_key,
    numbered_frames,
)

__all__ = ["read_smic"]

EMOTIONS = ("negative", "positive", "surprise")
_SUBJECT = re.compile(r"s\d+", re.IGNORECASE)


def _subjects(folder: Path) -> list[Path]:
    return sorted(
        (c for c in folder.iterdir() if c.is_dir() and _SUBJECT.fullmatch(c.name)),
        key=lambda p: natural_key(p.name),
    )


def _is_hs(folder: Path) -> bool:
    return any((s / "micro").is_dir() for s in _subjects(folder))


def _is_hs_below(folder: Path) -> bool:
    """A folder named HS below the given root (skips SMIC's VIS and NIR parts)."""
    return folder.name.lower() == "hs" and _is_hs(folder)


def _dirs(folder: Path) -> list[Path]:
    return sorted(
        (c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def read_smic(root: str | Path) -> list[Sample]:
    """Samples of SMIC-HS, sorted by subject, emotion folder and clip.

    Every unusable clip (no numbered frames, a folder of an unknown emotion, a clip
    already read under another emotion) is reported at once in a
    :class:`~msmmt.core.records.SheetRowsError`, which also carries the good clips' samples.
    """
    root = existing_folder(root, "dataset root")
    hs = root if _is_hs(root) else find_root(root, _is_hs_below, "SMIC-HS folder (HS/sN/micro)")
    samples: list[Sample] = []
    problems: list[RowProblem] = []
    seen: dict[str, Path] = {}
    for subject in _subjects(hs):
        for clip_dir in _clip_dirs(subject):
            try:
                samples.append(_clip_sample(subject.name, clip_dir, seen))
            except DatasetError as err:
                problems.append(RowProblem("smic", f"smic/{subject.name}", clip_dir.name, str(err)))
    if problems:
        raise SheetRowsError(problems, samples)
    return samples


def _clip_dirs(subject: Path) -> list[Path]:
    """The clip folders of ``subject/micro/<emotion>/`` (none without ``micro``)."""
    micro = subject / "micro"
    if not micro.is_dir():
        return []
    return [clip for emotion_dir in _dirs(micro) for clip in _dirs(emotion_dir)]


def _clip_sample(subject: str, clip_dir: Path, seen: dict[str, Path]) -> Sample:
    """The sample of one clip folder; a DatasetError naming the folder if it is unusable."""
    emotion_dir = clip_dir.parent
    emotion = emotion_dir.name.lower()
    if emotion not in EMOTIONS:
        raise DatasetError(
            f"{emotion_dir}: unknown emotion folder {emotion_dir.name!r}; "
            f"expected one of {', '.join(EMOTIONS)}"
        )
    key = f"smic/{subject}/{clip_dir.name}"
    if key in seen:
        raise DatasetError(f"duplicate clip {key}: {seen[key]} and {clip_dir}")
    seen[key] = clip_dir
    frames, numbers = numbered_frames(clip_dir)
    onset, apex, offset, assumed = resolve_marks(numbers, None, None, None, str(clip_dir))
    return Sample(
        dataset="smic",
        subject=f"smic/{subject}",
        clip=clip_dir.name,
        label=emotion,
        frames=frames,
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        apex_estimated=True,
        extra={"assumed": "; ".join(assumed)},
    )
