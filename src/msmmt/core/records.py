"""The one record every dataset reader produces.

A :class:`Sample` is one micro-expression clip (or one pair of precomputed images).
Frame indices (``onset``, ``apex``, ``offset``) are the dataset's own frame
numbers, as written in its annotation sheet and file names; ``frame_numbers``
holds the number of each path in ``frames`` (sorted by number, not by name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DatasetError", "RowProblem", "Sample", "SheetRowsError"]


class DatasetError(ValueError):
    """Bad input data; the message names the file (and row) and what is wrong."""


@dataclass(frozen=True)
class RowProblem:
    """One annotation row a reader could not use; ``error`` names the file and row."""

    dataset: str
    subject: str
    clip: str
    error: str


class SheetRowsError(DatasetError):
    """Some rows of an annotation sheet are unusable: every problem at once.

    ``problems`` lists them; ``samples`` holds the rows that were fine, so a caller
    that can go on without the bad ones (preprocessing) does.
    """

    def __init__(self, problems: list[RowProblem], samples: list[Sample]):
        self.problems = problems
        self.samples = samples
        lines = "\n".join(f"  {p.error}" for p in problems)
        super().__init__(f"{len(problems)} unusable annotation row(s):\n{lines}")


@dataclass(frozen=True)
class Sample:
    dataset: str
    """Dataset name: ``casme2``, ``samm``, ``smic``, ``synthetic``, ``precomputed``..."""
    subject: str
    """Subject id, unique across datasets (e.g. ``casme2/sub01``)."""
    clip: str
    """Clip id, unique within the subject (e.g. ``EP02_01f``)."""
    label: str
    """The clip's label, lower case: the emotion as the dataset names it (e.g.
    ``happiness``) from the single-dataset readers, or a class of a class set (e.g.
    ``positive``) from ``read_composite`` and after ``filter_class_set``, which keep the
    dataset's emotion in ``extra["emotion"]``; ``""`` for an unlabelled clip."""
    frames: tuple[Path, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    video: Path | None = None
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    apex_estimated: bool = False
    """True when the annotation had no apex and ``apex`` is an estimate."""
    texture_image: Path | None = None
    """Precomputed texture image (dynamic image, or apex crop standing in for it)."""
    motion_image: Path | None = None
    """Precomputed 3-channel (u, v, strain) image."""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Stable id of the sample: ``dataset/subject/clip``-like, file-name safe."""
        return f"{self.subject}/{self.clip}".replace("\\", "/")
