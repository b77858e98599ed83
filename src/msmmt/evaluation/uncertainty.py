"""How sure a score is: bootstrap intervals over subjects, paired differences, seed spreads.

See ``docs/METHOD.md``, "Uncertainty". The unit of a LOSO evaluation is the subject (clips
of one subject are not independent), so the bootstrap resamples *subjects*: a resample
draws S subjects with replacement out of the S tested, pools every prediction of each
drawn subject (a subject drawn twice counts twice) and recomputes the metric on the
pool, exactly as the point estimate pools all folds (:mod:`msmmt.engine.metrics`).

With ``M_s`` the confusion matrix of subject s and ``k_bs`` how often resample b drew it,
resample b's pooled confusion matrix is ``M_b = sum_s k_bs M_s``; its Acc / UAR / UF1
follow from ``M_b``. The 95% interval is the percentile interval: the 2.5% and 97.5%
quantiles of the B resampled values (``numpy.quantile``, linear interpolation).

- :func:`bootstrap_interval`: interval of each metric of one run.
- :func:`paired_difference`: two runs on the same subjects; both are scored on the
  *same* resamples, so subject difficulty cancels and the interval of
  ``UF1_A - UF1_B`` is far narrower than the two separate intervals suggest; also the
  fraction of resamples in which A scores higher.
- A run may consist of several seeds (several prediction sets of the same samples); its
  value on a resample is then the mean over its seeds (:class:`RunPredictions`).
- :func:`seed_spread`: mean, standard deviation, minimum and maximum over seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "N_BOOT",
    "PairedDifference",
    "RunPredictions",
    "all_resamples",
    "bootstrap_interval",
    "metrics_of_confusions",
    "noise_note",
    "paired_difference",
    "part_intervals",
    "resample_counts",
    "run_predictions",
    "seed_spread",
    "subject_confusions",
]

METRICS = ("acc", "uar", "uf1")
N_BOOT = 2000
"""Default number of bootstrap resamples."""


@dataclass(frozen=True)
class RunPredictions:
    """Predictions of one run (one or several seeds) as class indices.

    ``true`` and ``subject`` are shared by the seeds; ``predicted`` is ``(n_seeds, N)``.
    """

    true: np.ndarray
    predicted: np.ndarray
    subject: np.ndarray
    n_classes: int

    @classmethod
    def single(cls, true, predicted, subject, n_classes: int) -> RunPredictions:
        return cls(np.asarray(true), np.asarray(predicted)[None, :], np.asarray(subject), n_classes)


def subject_confusions(
    true: np.ndarray, predicted: np.ndarray, subject: np.ndarray, subjects: Sequence, n_classes: int
) -> np.ndarray:
    """``(S, C, C)`` confusion matrix of each subject in ``subjects`` (rows true, columns predicted)."""
    index = {s: i for i, s in enumerate(subjects)}
    s_idx = np.array([index[s] for s in subject], dtype=np.int64)
    flat = (s_idx * n_classes + np.asarray(true)) * n_classes + np.asarray(predicted)
    counts = np.bincount(flat, minlength=len(subjects) * n_classes * n_classes)
    return counts.reshape(len(subjects), n_classes, n_classes)


def metrics_of_confusions(m: np.ndarray) -> dict[str, np.ndarray]:
    """Acc, UAR, UF1 of a stack of confusion matrices ``(..., C, C)`` (zero denominators
    count as 0, as :func:`msmmt.engine.metrics.per_class`)."""
    m = np.asarray(m, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    support, predicted = m.sum(axis=-1), m.sum(axis=-2)
    n = support.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        acc = np.where(n > 0, tp.sum(axis=-1) / n, np.nan)
    return {"acc": acc, "uar": recall.mean(axis=-1), "uf1": f1.mean(axis=-1)}


def resample_counts(n_subjects: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``(n_boot, S)``: how often each subject is drawn in each of ``n_boot`` resamples of
    S subjects with replacement (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    offsets = np.arange(n_boot)[:, None] * n_subjects
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_subjects)
    return counts.reshape(n_boot, n_subjects)


def all_resamples(n_subjects: int) -> np.ndarray:
    """``(S**S, S)`` counts of every ordered resample: the exact bootstrap distribution
    (each row equally likely). Only for tiny S (tests, hand checks)."""
    if n_subjects > 7:
        raise ValueError(f"{n_subjects}**{n_subjects} resamples are too many to enumerate")
    rows = itertools.product(range(n_subjects), repeat=n_subjects)
    return np.array([np.bincount(r, minlength=n_subjects) for r in rows], dtype=np.int64)


def _resampled(run: RunPredictions, subjects: Sequence, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric on each resample (rows of ``counts``), averaged over the run's seeds."""
    per_seed = []
    for pred in run.predicted:
        cm = subject_confusions(run.true, pred, run.subject, subjects, run.n_classes)
        pooled = np.tensordot(counts, cm, axes=(1, 0))  # (B, C, C)
        per_seed.append(metrics_of_confusions(pooled))
    return {k: np.mean([p[k] for p in per_seed], axis=0) for k in METRICS}


def _point(run: RunPredictions) -> dict[str, float]:
    subjects = sorted(set(run.subject))
    values = _resampled(run, subjects, np.ones((1, len(subjects)), dtype=np.int64))
    return {k: float(v[0]) for k, v in values.items()}


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [a, 1.0 - a])
    return float(lo), float(hi)


def _counts(n_subjects: int, n_boot: int, seed: int, exact: bool) -> np.ndarray:
    return all_resamples(n_subjects) if exact else resample_counts(n_subjects, n_boot, seed)


def bootstrap_interval(
    run: RunPredictions, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
    exact: bool = False,
) -> dict[str, tuple[float, float, float]]:
    """``metric -> (point, lo, hi)`` for Acc, UAR, UF1 by the subject bootstrap (module doc).

    ``exact`` enumerates all S**S resamples instead of drawing ``n_boot`` (tiny S only).
    """
    subjects = sorted(set(run.subject))
    values = _resampled(run, subjects, _counts(len(subjects), n_boot, seed, exact))
    point = _point(run)
    return {k: (point[k], *_quantiles(values[k], level)) for k in METRICS}


@dataclass(frozen=True)
class PairedDifference:
    metric: str
    difference: float
    """Point estimate ``metric_A - metric_B`` on all subjects."""
    lo: float
    hi: float
    p_a_better: float
    """``P(A > B) + P(A = B) / 2`` over the resamples: 0.5 when the runs tie on every
    resample (a run with itself), so ``1 - p`` is ``P(B > A)`` counted the same way."""
    n_boot: int


def paired_difference(
    a: RunPredictions, b: RunPredictions, metric: str = "uf1", n_boot: int = N_BOOT,
    seed: int = 0, level: float = 0.95, exact: bool = False,
) -> PairedDifference:
    """Bootstrap of ``metric_A - metric_B`` with the same subject resamples for both runs.

    The runs must hold the same samples in the same order (same ``true`` and ``subject``).
    """
    if a.true.shape != b.true.shape or not (
        np.array_equal(a.true, b.true) and np.array_equal(a.subject, b.subject)
    ):
        raise ValueError("paired bootstrap needs the same samples (labels, subjects) in both runs")
    subjects = sorted(set(a.subject))
    counts = _counts(len(subjects), n_boot, seed, exact)
    diff = _resampled(a, subjects, counts)[metric] - _resampled(b, subjects, counts)[metric]
    point = _point(a)[metric] - _point(b)[metric]
    lo, hi = _quantiles(diff, level)
    return PairedDifference(metric, point, lo, hi, _p_greater(diff), len(counts))


def _p_greater(diff: np.ndarray) -> float:
    """``P(d > 0) + P(d = 0) / 2`` (ties to within 1e-12 count half)."""
    tie = np.abs(diff) <= 1e-12
    return float(np.mean(~tie & (diff > 0)) + 0.5 * np.mean(tie))


def seed_spread(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``sd`` (n - 1 in the denominator; 0 for one seed), ``min``, ``max``, ``n``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to summarise")
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "sd": sd, "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}


def _indices(values: pd.Series, classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64)


def run_predictions(frames: Sequence[pd.DataFrame], classes: Sequence[str]) -> RunPredictions:
    """:class:`RunPredictions` of one or several seeds' pooled predictions tables (columns
    key, subject, true, predicted); rows are matched by key, in the first table's order."""
    first = frames[0]
    keys = first["key"].to_numpy()
    predicted = []
    for frame in frames:
        indexed = frame.set_index("key")
        if set(indexed.index) != set(keys) or len(indexed) != len(keys):
            raise ValueError("the seeds of a run must predict the same samples")
        predicted.append(_indices(indexed.loc[keys, "predicted"], classes))
    return RunPredictions(_indices(first["true"], classes), np.stack(predicted),
                          first["subject"].to_numpy(), len(classes))


def part_intervals(
    frames: Sequence[pd.DataFrame], classes: Sequence[str], n_boot: int = N_BOOT, seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per part (``all`` and, with several datasets, each dataset): n, subjects and,
    for each metric, the point estimate (mean over seeds) and its bootstrap interval
    (``<metric>_lo``, ``<metric>_hi``); each part resamples its own subjects."""
    first = frames[0]
    parts = [("all", np.ones(len(first), dtype=bool))]
    datasets = sorted(set(first["dataset"]))
    if len(datasets) > 1:
        parts += [(d, (first["dataset"] == d).to_numpy()) for d in datasets]
    rows = []
    for name, mask in parts:
        keys = set(first.loc[mask, "key"])
        run = run_predictions([f[f["key"].isin(keys)] for f in frames], classes)
        ci = bootstrap_interval(run, n_boot, seed, level)
        row = {"part": name, "n": int(mask.sum()), "subjects": len(set(run.subject))}
        for m in METRICS:
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = ci[m]
        rows.append(row)
    return pd.DataFrame(rows)


def noise_note(n_clips: int, n_subjects: int, lo: float, hi: float, level: float = 0.95) -> str:
    """A sentence on what the UF1 interval ``[lo, hi]`` means for comparing runs."""
    half = (hi - lo) / 2.0
    return (
        f"With {n_clips} clips of {n_subjects} subjects, the {level:.0%} subject-bootstrap "
        f"interval of the UF1 is [{lo:.3f}, {hi:.3f}] (about ±{half:.3f}): two runs whose UF1 "
        f"differ by less than about {half:.2f} are within noise unless a paired bootstrap on "
        "the same folds (`msmmt compare`) says otherwise."
    )
