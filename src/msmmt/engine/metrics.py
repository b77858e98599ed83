"""Micro-expression recognition metrics: Acc, UAR and UF1 from a confusion matrix.

All three are computed on the predictions *pooled over all folds* (``docs/METHOD.md``,
"Metrics"), never averaged over folds. With ``M`` the ``C x C`` confusion matrix
(rows = true class, columns = predicted class), ``TP_c = M[c, c]``,
``FN_c = sum_j M[c, j] - TP_c`` and ``FP_c = sum_i M[i, c] - TP_c``:

- ``Acc = sum_c TP_c / N``
- ``UAR = (1 / C) sum_c TP_c / (TP_c + FN_c)``  (unweighted average recall = macro recall)
- ``UF1 = (1 / C) sum_c 2 TP_c / (2 TP_c + FP_c + FN_c)``  (paper, eq. for UF1; macro F1)

Convention for a class with no true samples (and, for F1, no predictions either): its
recall / F1 has a zero denominator and counts as **0**, and it still counts in the mean
over all ``C`` classes. This is exactly scikit-learn's
``recall_score(..., average="macro", labels=range(C), zero_division=0)`` and
``f1_score(..., average="macro", labels=range(C), zero_division=0)``; it penalises a run
whose pooled test set lacks a class instead of silently averaging over fewer classes.
In a full LOSO run every sample is tested once, so a class is absent from the pooled set
only if the data set itself lacks it.

Reference: Wang et al., MSMMT, section 4.2; MEGC2019 (See et al., 2019) for UF1/UAR.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["confusion", "per_class", "scores", "scores_by_group"]


def _labels(y: Sequence[int] | np.ndarray, n_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    return arr


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``C x C`` integer confusion matrix; ``M[i, j]`` counts true class i predicted as j."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    t = _labels(y_true, n_classes, "y_true")
    p = _labels(y_pred, n_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den == 0`` (scikit-learn's zero_division=0)."""
    num = num.astype(np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``recall``, ``precision``, ``f1`` and ``support`` from a confusion matrix.

    ``f1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``; zero denominators give 0 (see module doc).
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    tp = np.diag(m)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    return {
        "recall": _safe_ratio(tp, support),
        "precision": _safe_ratio(tp, predicted),
        "f1": _safe_ratio(2 * tp, support + predicted),
        "support": support,
    }


def scores(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """``{"acc", "uar", "uf1", "n"}`` of pooled predictions (module doc gives the equations).

    An empty prediction set gives NaN scores and ``n = 0``.
    """
    m = confusion(y_true, y_pred, n_classes)
    n = int(m.sum())
    if n == 0:
        return {"acc": float("nan"), "uar": float("nan"), "uf1": float("nan"), "n": 0}
    pc = per_class(m)
    return {
        "acc": float(np.trace(m) / n),
        "uar": float(pc["recall"].mean()),
        "uf1": float(pc["f1"].mean()),
        "n": n,
    }


def scores_by_group(y_true, y_pred, groups, n_classes: int) -> dict[str, dict[str, float]]:
    """:func:`scores` of each group (e.g. each dataset part of the composite set), sorted by name.

    Each group is scored over all ``C`` classes, as the paper reports the parts of the
    composite set (Table 2).
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    g = np.asarray(groups)
    if not (t.shape == p.shape == g.shape):
        raise ValueError("y_true, y_pred and groups must have the same length")
    return {str(name): scores(t[g == name], p[g == name], n_classes) for name in sorted(set(g))}
