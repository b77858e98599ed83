"""SMIC-HS (the 100 fps high-speed part of SMIC).

Layout: ``ROOT/HS/sN/micro/{positive,negative,surprise}/<clip>/image*.bmp``; ``ROOT``
may also be the ``HS`` folder itself, or hold a folder named ``HS`` up to two levels
down (e.g. ``SMIC/SMIC_all_raw/HS`` beside ``VIS`` and ``NIR``, which are ignored). There is
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
from msmmt.core.records import DatasetError, Sample
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
    """Samples of SMIC-HS, sorted by subject, emotion folder and clip."""
    root = existing_folder(root, "dataset root")
    hs = root if _is_hs(root) else find_root(root, _is_hs_below, "SMIC-HS folder (HS/sN/micro)")
    samples = []
    for subject in _subjects(hs):
        micro = subject / "micro"
        if not micro.is_dir():
            continue
        for emotion_dir in _dirs(micro):
            emotion = emotion_dir.name.lower()
            if emotion not in EMOTIONS:
                raise DatasetError(
                    f"{emotion_dir}: unknown emotion folder {emotion_dir.name!r}; "
                    f"expected one of {', '.join(EMOTIONS)}"
                )
            for clip_dir in _dirs(emotion_dir):
                frames, numbers = numbered_frames(clip_dir)
                onset, apex, offset, assumed = resolve_marks(
                    numbers, None, None, None, str(clip_dir)
                )
                samples.append(
                    Sample(
                        dataset="smic",
                        subject=f"smic/{subject.name}",
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
                )
    seen: dict[str, Sample] = {}
    for s in samples:
        if s.key in seen:
            raise DatasetError(
                f"duplicate clip {s.key}: {seen[s.key].frames[0].parent} and {s.frames[0].parent}"
            )
        seen[s.key] = s
    return samples
