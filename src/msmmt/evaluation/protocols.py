"""Subject-grouped evaluation splits and the leakage guard (``docs/METHOD.md``, "LOSO and leakage").

- :func:`loso_folds`: leave-one-subject-out, one fold per subject, the subject's clips
  are the test set and every other clip is training data.
- :func:`group_kfold`: ``k`` folds whose test sets are disjoint groups of whole subjects,
  with balanced numbers of clips.
- :func:`validation_split`: a validation set of whole *training* subjects, for early
  stopping that never looks at the test subject.
- :func:`check_no_leak`: raises :class:`LeakageError` when a subject appears both in the
  test set and in the training or validation set of a fold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from msmmt.core.names import file_safe
from msmmt.core.records import DatasetError, Sample

__all__ = [
    "Fold",
    "LeakageError",
    "check_no_leak",
    "fold_name",
    "group_kfold",
    "loso_folds",
    "validation_split",
]


class LeakageError(RuntimeError):
    """A fold's test subject also appears in its training or validation data."""


@dataclass(frozen=True)
class Fold:
    """One train/test split, as sample keys (:attr:`Sample.key`).

    ``val_keys`` is the validation set carved out of the training subjects, when early
    stopping uses one (empty otherwise).
    """

    name: str
    train_keys: tuple[str, ...]
    test_keys: tuple[str, ...]
    val_keys: tuple[str, ...] = ()


def fold_name(subject: str) -> str:
    """A file-safe fold name for a subject id: ``casme2/sub01`` -> ``casme2_sub01``."""
    name = file_safe(subject)
    if not name:
        raise DatasetError(f"subject id {subject!r} gives an empty fold name")
    return name


def _by_subject(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    if not samples:
        raise DatasetError("no samples to split into folds")
    groups: dict[str, list[Sample]] = defaultdict(list)
    seen: set[str] = set()
    for s in samples:
        if s.key in seen:
            raise DatasetError(f"sample key {s.key!r} occurs twice; keys must be unique")
        seen.add(s.key)
        groups[s.subject].append(s)
    return dict(groups)


def _keys(samples: Iterable[Sample]) -> tuple[str, ...]:
    return tuple(s.key for s in samples)


def loso_folds(samples: Sequence[Sample]) -> list[Fold]:
    """Leave-one-subject-out: one fold per subject, named :func:`fold_name` of it, sorted.
    Fewer than 2 subjects (a fold without training data) is a DatasetError."""
    groups = _by_subject(samples)
    if len(groups) < 2:
        raise DatasetError(
            f"leave-one-subject-out needs at least 2 subjects, the data has {len(groups)} "
            f"({', '.join(groups) or 'no clips'})"
        )
    names: dict[str, str] = {}
    for subject in groups:
        name = fold_name(subject)
        if name in names:
            raise DatasetError(
                f"subjects {names[name]!r} and {subject!r} give the same fold name {name!r}"
            )
        names[name] = subject
    folds = []
    for name in sorted(names):
        subject = names[name]
        train = [s for s in samples if s.subject != subject]
        folds.append(Fold(name, _keys(train), _keys(groups[subject])))
    return folds


def group_kfold(samples: Sequence[Sample], k: int, seed: int) -> list[Fold]:
    """``k`` subject-grouped folds ``fold01``..``foldk`` with balanced test-set sizes.

    Subjects are shuffled with ``seed``, then taken largest first (stable sort) and each
    is given to the fold with the fewest clips so far (the lowest index on ties); so every
    subject is tested in exactly one fold and fold sizes differ by at most the largest
    subject's clip count.
    """
    groups = _by_subject(samples)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if k > len(groups):
        raise DatasetError(f"k={k} folds need at least {k} subjects, the data has {len(groups)}")
    rng = np.random.default_rng(seed)
    subjects = sorted(groups)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    order.sort(key=lambda subj: -len(groups[subj]))
    members: list[set[str]] = [set() for _ in range(k)]
    sizes = [0] * k
    for subj in order:
        i = int(np.argmin(sizes))
        members[i].add(subj)
        sizes[i] += len(groups[subj])
    width = len(str(k))
    return [
        Fold(
            f"fold{i + 1:0{max(2, width)}d}",
            _keys(s for s in samples if s.subject not in test),
            _keys(s for s in samples if s.subject in test),
        )
        for i, test in enumerate(members)
    ]


def validation_split(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split training ``samples`` into ``(train, val)`` by whole subjects.

    ``round(fraction * n_subjects)`` subjects (at least one, at most ``n_subjects - 1``),
    drawn with ``seed``, form the validation set. Order within each part is kept.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    groups = _by_subject(samples)
    if len(groups) < 2:
        raise DatasetError(
            f"a validation split by subject needs at least 2 training subjects, got {len(groups)}"
        )
    subjects = sorted(groups)
    n_val = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    rng = np.random.default_rng(seed)
    val_subjects = {subjects[i] for i in rng.choice(len(subjects), size=n_val, replace=False)}
    train = [s for s in samples if s.subject not in val_subjects]
    val = [s for s in samples if s.subject in val_subjects]
    return train, val


def check_no_leak(fold: Fold, samples: Sequence[Sample]) -> None:
    """Raise :class:`LeakageError` if a test subject is also in the fold's training or
    validation set (which covers a repeated sample too: a key belongs to one subject), or
    the test set is empty; :class:`DatasetError` if a key is not among ``samples``."""
    subject_of = {s.key: s.subject for s in samples}

    def subjects(keys: tuple[str, ...], part: str) -> set[str]:
        unknown = [k for k in keys if k not in subject_of]
        if unknown:
            raise DatasetError(f"fold {fold.name}: {part} keys not among the samples: {unknown[:5]}")
        return {subject_of[k] for k in keys}

    if not fold.test_keys:
        raise LeakageError(f"fold {fold.name}: empty test set")
    test = subjects(fold.test_keys, "test")
    for part, keys in (("training", fold.train_keys), ("validation", fold.val_keys)):
        shared = test & subjects(keys, part)
        if shared:
            raise LeakageError(
                f"fold {fold.name}: test subject(s) {sorted(shared)} also in the {part} set"
            )
