"""Class sets and the mapping of each dataset's emotions onto them (``docs/METHOD.md``, "Composite set").

``composite`` is the MEGC2019 three-class set used for the composite (CDE)
protocol; ``casme2``, ``samm`` and ``smic`` are the single-dataset (SDE) sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msmmt.core.records import DatasetError

__all__ = ["CLASS_SETS", "class_names", "label_indices", "map_label"]

CLASS_SETS: dict[str, tuple[str, ...]] = {
    "composite": ("negative", "positive", "surprise"),
    "casme2": ("disgust", "happiness", "repression", "surprise", "others"),
    "samm": ("anger", "happiness", "contempt", "surprise", "other"),
    "smic": ("negative", "positive", "surprise"),
}

_COMPOSITE = {
    "happiness": "positive",
    "positive": "positive",
    "disgust": "negative",
    "repression": "negative",
    "anger": "negative",
    "contempt": "negative",
    "fear": "negative",
    "sadness": "negative",
    "negative": "negative",
    "surprise": "surprise",
}

# CASME II fear and sadness are left out of the composite set (MEGC2019); so are
# "others"/"other".
_COMPOSITE_EXCLUDED = {("casme2", "fear"), ("casme2", "sadness")}

KNOWN_EMOTIONS = set(_COMPOSITE) | {"others", "other"}


def class_names(class_set: str) -> tuple[str, ...]:
    try:
        return CLASS_SETS[class_set]
    except KeyError:
        raise ValueError(f"unknown class set {class_set!r}; one of {sorted(CLASS_SETS)}") from None


def map_label(dataset: str, emotion: str, class_set: str) -> str | None:
    """Map a dataset's emotion to a class of ``class_set``; None if the sample is left out."""
    emotion = emotion.strip().lower()
    names = class_names(class_set)
    if emotion not in KNOWN_EMOTIONS:
        raise DatasetError(f"{dataset}: unknown emotion {emotion!r}")
    if class_set == "composite":
        if (dataset, emotion) in _COMPOSITE_EXCLUDED:
            return None
        return _COMPOSITE.get(emotion)
    return emotion if emotion in names else None


def label_indices(
    labels: Sequence[str], classes: Sequence[str], names: Sequence[str] | None = None
) -> np.ndarray:
    """Index of each label in ``classes`` (int64); a label outside them is a DatasetError
    naming its item (``names[i]``, e.g. the sample's key) and how to map labels first."""
    index = {c: i for i, c in enumerate(classes)}
    bad = [i for i, label in enumerate(labels) if label not in index]
    if bad:
        where = names[bad[0]] if names is not None else f"item {bad[0]}"
        raise DatasetError(
            f"{where}: label {labels[bad[0]]!r} is not one of the classes {list(classes)} "
            f"({len(bad)} such); map the dataset's emotions first "
            "(msmmt.data.readers.filter_class_set)"
        )
    return np.array([index[label] for label in labels], dtype=np.int64)
