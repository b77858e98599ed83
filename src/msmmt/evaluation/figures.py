"""The report's figures: pooled confusion matrix, accuracy per test subject, training curves;
and the comparison's forest plot of several runs (``msmmt compare``).

Each is drawn on its own matplotlib ``Figure`` (no global pyplot state) and written
atomically as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.core.io import atomic_path
from msmmt.evaluation.results import (
    RunResults,
    pooled_confusion,
    subject_accuracy,
    training_curves,
)

__all__ = [
    "COMPARISON_PNG",
    "CONFUSION_PNG",
    "CURVES_PNG",
    "SUBJECT_PNG",
    "plot_comparison",
    "plot_confusion",
    "plot_curves",
    "plot_subjects",
    "write_figures",
]

CONFUSION_PNG = "confusion.png"
SUBJECT_PNG = "subject_accuracy.png"
CURVES_PNG = "training_curves.png"
COMPARISON_PNG = "comparison.png"


def _figure(path: Path, draw, size: tuple[float, float]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    draw(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_confusion(m: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """Confusion matrix ``m`` (true x predicted counts), cells coloured by row fraction."""

    def draw(fig):
        ax = fig.subplots()
        rows = m.sum(axis=1, keepdims=True)
        frac = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
        im = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]}\n{frac[i, j]:.0%}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.5 else "black", fontsize=9)
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Pooled confusion matrix (counts, row %)")
        fig.colorbar(im, ax=ax, fraction=0.046)

    side = 2.0 + 0.9 * len(classes)
    _figure(path, draw, (side + 1.0, side))


def plot_subjects(table: pd.DataFrame, path: Path) -> None:
    """Bars of accuracy per test subject (:func:`~msmmt.evaluation.results.subject_accuracy`)."""

    def draw(fig):
        ax = fig.subplots()
        datasets = sorted(set(table["dataset"]))
        colours = {d: f"C{i}" for i, d in enumerate(datasets)}
        x = np.arange(len(table))
        ax.bar(x, table["accuracy"], color=[colours[d] for d in table["dataset"]])
        ax.set_xticks(x, table["subject"], rotation=90, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy")
        ax.set_title("Accuracy per test subject (number of clips in the label)")
        for xi, (n, acc) in enumerate(zip(table["n"], table["accuracy"], strict=True)):
            ax.text(xi, acc + 0.01, str(n), ha="center", va="bottom", fontsize=6)
        if len(datasets) > 1:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color=colours[d], label=d) for d in datasets], fontsize=8)

    _figure(path, draw, (max(6.0, 0.18 * len(table) + 2.0), 4.0))


def plot_curves(curves: pd.DataFrame, n_folds: int, path: Path) -> None:
    """Mean training curves over the folds: losses on the left, other values on the right."""
    losses = [c for c in curves.columns if c.endswith("loss")]
    others = [c for c in curves.columns if c not in losses]

    def draw(fig):
        from matplotlib.ticker import MaxNLocator

        axes = fig.subplots(1, 2 if others else 1, squeeze=False)[0]
        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for col in losses:
            axes[0].plot(curves.index, curves[col], marker=".", label=col)
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("loss")
        axes[0].set_title(f"Mean loss over {n_folds} fold(s)")
        if losses:
            axes[0].legend(fontsize=8)
        if others:
            for col in others:
                axes[1].plot(curves.index, curves[col], marker=".", label=col)
            axes[1].set_xlabel("epoch")
            axes[1].set_title("Mean of the other logged values")
            axes[1].legend(fontsize=8)

    _figure(path, draw, (10.0 if others else 6.0, 4.0))


def plot_comparison(points: pd.DataFrame, path: Path, part: str = "all") -> None:
    """Forest plot of runs compared on the same folds (``points``: as
    :func:`msmmt.evaluation.comparison.against_first`), the first run at the top.

    Left: each run's UF1 with its 95% subject-bootstrap interval. Right: each other run's
    paired difference from the first with its 95% interval, dark where the interval
    excludes 0 (a difference beyond the subject sampling noise), grey where it does not.
    """
    n = len(points)
    y = np.arange(n)[::-1]
    first = points["run"].iloc[0]

    def draw(fig):
        from matplotlib.ticker import MaxNLocator

        left, right = fig.subplots(1, 2, sharey=True, width_ratios=(1, 1))
        left.errorbar(points["uf1"], y, xerr=[points["uf1"] - points["uf1_lo"],
                                               points["uf1_hi"] - points["uf1"]],
                      fmt="o", color="tab:blue", capsize=3)
        left.set_yticks(y, points["run"])
        left.set_xlabel(f"UF1 ({part}), 95% interval")
        for yi, row in zip(y[1:], points.iloc[1:].to_dict(orient="records"), strict=True):
            beyond = row["diff_lo"] > 0 or row["diff_hi"] < 0
            right.errorbar(row["diff"], yi, xerr=[[row["diff"] - row["diff_lo"]],
                                                  [row["diff_hi"] - row["diff"]]],
                           fmt="o", capsize=3, color="black" if beyond else "0.6")
        right.axvline(0.0, color="tab:blue", linewidth=1)
        right.annotate("reference", (0.0, y[0]), xytext=(-4, 0), textcoords="offset points",
                       ha="right", va="center", color="tab:blue", fontsize=8)
        right.xaxis.set_major_locator(MaxNLocator(6))
        right.set_xlabel(f"UF1 minus {first}, paired 95% interval")
        for ax in (left, right):
            ax.grid(axis="x", alpha=0.3)

    _figure(path, draw, (10.0, 1.2 + 0.45 * n))


def write_figures(results: RunResults) -> list[str]:
    """Draw the figures the results allow into the run folder; their file names."""
    run, p = results.run_dir, results.predictions
    written = []
    if len(p):
        plot_confusion(pooled_confusion(results), results.classes, run / CONFUSION_PNG)
        plot_subjects(subject_accuracy(p), run / SUBJECT_PNG)
        written += [CONFUSION_PNG, SUBJECT_PNG]
    if len(results.history):
        plot_curves(training_curves(results.history), len(results.folds("done")), run / CURVES_PNG)
        written.append(CURVES_PNG)
    return written
