"""Merge a run's finished folds (from any number of shards) into a report.

:func:`write_report` reads ``RUN/folds/*/predictions.csv`` of every fold with a done marker
and writes, beside them:

- ``report.md``: Acc / UAR / UF1 on the predictions pooled over all folds (the whole set
  and, when several datasets are present, each part), the paper's Table 2 figures clearly
  labelled as the paper's, per-class scores, the confusion matrix, folds done / missing /
  failed and how the run avoided test-subject leaks;
- ``metrics.csv`` (one row per part), ``predictions.csv`` (pooled, with the fold);
- ``confusion.png``, ``subject_accuracy.png``, ``training_curves.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.config import Config, load_config
from msmmt.core.io import atomic_path, atomic_write_text
from msmmt.core.labels import class_names
from msmmt.core.records import DatasetError
from msmmt.engine.baselines import describe
from msmmt.engine.metrics import confusion, per_class, scores, scores_by_group
from msmmt.evaluation.runner import (
    CONFIG_FILE,
    ERROR_FILE,
    FOLDS_DIR,
    HISTORY_FILE,
    PLAN_FILE,
    PREDICTIONS_FILE,
    fold_status,
)
from msmmt.evaluation.uncertainty import METRICS, N_BOOT, noise_note, part_intervals

__all__ = ["PAPER_TABLE2", "RunResults", "load_run", "metrics_table", "print_metrics", "write_report"]

PAPER_TABLE2: dict[str, dict[str, float]] = {
    "all": {"uf1": 0.8160, "uar": 0.8191},
    "smic": {"uf1": 0.7651, "uar": 0.7780},
    "casme2": {"uf1": 0.9071, "uar": 0.8878},
    "samm": {"uf1": 0.7392, "uar": 0.7163},
}
"""MSMMT paper (Wang et al.), Table 2: composite set (MEGC2019, 3 classes), LOSO, UF1 / UAR
for the full set and each part, as published (protocol details not stated)."""

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.csv"
POOLED_FILE = "predictions.csv"
CONFUSION_PNG = "confusion.png"
SUBJECT_PNG = "subject_accuracy.png"
CURVES_PNG = "training_curves.png"


@dataclass
class RunResults:
    """A run directory's plan, fold states and the pooled outputs of its finished folds."""

    run_dir: Path
    config: Config
    classes: tuple[str, ...]
    status: dict[str, str]
    """Fold name -> ``done`` / ``failed`` / ``missing``, in plan order."""
    predictions: pd.DataFrame
    """Pooled predictions of the finished folds, with a ``fold`` column."""
    history: pd.DataFrame
    """Training histories of the finished folds, with a ``fold`` column."""
    errors: dict[str, str] = field(default_factory=dict)
    """Failed fold -> the last line of its error.txt."""

    def folds(self, state: str) -> list[str]:
        return [name for name, s in self.status.items() if s == state]


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return lines[-1] if lines else "(empty error file)"


def _read_fold(fold_dir: Path, classes: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = fold_dir / PREDICTIONS_FILE
    try:
        pred = pd.read_csv(path, dtype={"key": str, "subject": str, "dataset": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"{path}: unreadable predictions of a finished fold: {err}") from None
    needed = ["key", "subject", "dataset", "true", "predicted", *(f"p_{c}" for c in classes)]
    missing = [c for c in needed if c not in pred.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}")
    for col in ("true", "predicted"):
        bad = sorted(set(pred[col]) - set(classes))
        if bad:
            raise DatasetError(f"{path}: {col} holds {bad}, not among the classes {list(classes)}")
    pred.insert(0, "fold", fold_dir.name)
    hist_path = fold_dir / HISTORY_FILE
    try:
        hist = pd.read_csv(hist_path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        hist = pd.DataFrame()
    if len(hist):
        hist.insert(0, "fold", fold_dir.name)
    return pred, hist


def load_run(run_dir: str | Path) -> RunResults:
    """Read a run directory written by :func:`msmmt.evaluation.runner.run_folds`."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file() or not (run / PLAN_FILE).is_file():
        raise FileNotFoundError(
            f"{run}: not a run directory (no {CONFIG_FILE} / {PLAN_FILE}); run `msmmt loso` first"
        )
    cfg = load_config(run / CONFIG_FILE)
    classes = class_names(cfg.data.class_set)
    plan = pd.read_csv(run / PLAN_FILE, dtype=str)
    names = list(dict.fromkeys(plan["fold"]))
    status = {name: fold_status(run, name) for name in names}
    preds, hists, errors = [], [], {}
    for name, state in status.items():
        d = run / FOLDS_DIR / name
        if state == "done":
            pred, hist = _read_fold(d, classes)
            preds.append(pred)
            hists.append(hist)
        elif state == "failed":
            errors[name] = _last_line(d / ERROR_FILE)
    if preds:
        predictions = pd.concat(preds, ignore_index=True)
    else:
        predictions = pd.DataFrame(columns=["fold", "key", "subject", "dataset", "true", "predicted"])
    hists = [h for h in hists if len(h)]
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    return RunResults(run, cfg, classes, status, predictions, history, errors)


def _indices(values: pd.Series, classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64)


CI_COLUMNS = [f"{m}_{end}" for m in METRICS for end in ("lo", "hi")]


def metrics_table(results: RunResults) -> pd.DataFrame:
    """Rows ``all`` and, with several datasets, one per dataset: part, n, acc, uar, uf1 and
    their 95% subject-bootstrap intervals ``<metric>_lo`` / ``<metric>_hi``
    (:mod:`msmmt.evaluation.uncertainty`)."""
    p = results.predictions
    c = len(results.classes)
    t, y = _indices(p["true"], results.classes), _indices(p["predicted"], results.classes)
    rows = [{"part": "all", **scores(t, y, c)}]
    datasets = sorted(set(p["dataset"]))
    if len(datasets) > 1:
        parts = scores_by_group(t, y, p["dataset"].to_numpy(), c)
        rows += [{"part": name, **s} for name, s in parts.items()]
    table = pd.DataFrame(rows, columns=["part", "n", "acc", "uar", "uf1"])
    if not len(p):
        return table.reindex(columns=[*table.columns, *CI_COLUMNS])
    ci = part_intervals([p], results.classes)
    return table.merge(ci[["part", *CI_COLUMNS]], on="part", how="left")


def _ci(row, metric: str) -> str:
    """``0.6420 [0.580, 0.702]``: the score and its interval."""
    lo, hi = getattr(row, f"{metric}_lo"), getattr(row, f"{metric}_hi")
    value = _fmt(getattr(row, metric))
    return value if pd.isna(lo) else f"{value} [{lo:.3f}, {hi:.3f}]"


def _paper(results: RunResults, part: str, metric: str) -> float | None:
    """The paper's figure for this part, only for the composite class set it reports."""
    if results.config.data.class_set != "composite":
        return None
    return PAPER_TABLE2.get(part, {}).get(metric)


def _fmt(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _uncertainty_note(results: RunResults, table: pd.DataFrame) -> list[str]:
    """The meaning of the intervals and the size of a difference within noise."""
    if not len(results.predictions):
        return []
    row = table.iloc[0]
    n_subjects = results.predictions["subject"].nunique()
    return [
        f"Intervals: 95% percentile bootstrap over subjects ({N_BOOT} resamples of the tested "
        "subjects with replacement, each resample's predictions pooled and rescored; seed 0). "
        + noise_note(len(results.predictions), n_subjects, row["uf1_lo"], row["uf1_hi"]),
        "",
    ]


def _protocol_note(cfg: Config) -> str:
    proto = (
        "leave-one-subject-out (each subject is the test set once)"
        if cfg.eval.protocol == "loso"
        else f"{cfg.eval.k}-fold cross-validation grouped by subject (seed {cfg.seed})"
    )
    if cfg.eval.early_stopping:
        stop = (
            f"early stopping (patience {cfg.eval.patience}) on a validation set of "
            f"{cfg.eval.val_fraction:.0%} of the *training* subjects of each fold, drawn with "
            f"seed {cfg.seed}; the test subject is never used for it"
        )
    else:
        stop = (
            f"a fixed {cfg.train.epochs} epochs; the last epoch's model is tested, "
            "no epoch is selected"
        )
    if cfg.baseline.kind != "none":
        stop = f"baseline {describe(cfg.baseline)}, not MSMMT"
    return (
        f"Protocol: {proto}. Training: {stop}. Every fold is checked before it runs: no "
        "subject is in both its test set and its training or validation set. No model choice "
        "(epoch, threshold, hyper-parameter) looked at a test subject. Acc, UAR (mean per-class "
        "recall) and UF1 (mean per-class F1) are computed once on the predictions pooled over "
        "all folds, never averaged over folds; a class absent from the pooled set counts as 0."
    )


def _figure(path: Path, draw, size: tuple[float, float]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    draw(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _plot_confusion(m: np.ndarray, classes: Sequence[str], path: Path) -> None:
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


def _subject_accuracy(pred: pd.DataFrame) -> pd.DataFrame:
    correct = (pred["true"] == pred["predicted"]).astype(float)
    table = pred.assign(correct=correct).groupby("subject", sort=True).agg(
        dataset=("dataset", "first"), n=("correct", "size"), accuracy=("correct", "mean")
    )
    return table.reset_index().sort_values(["accuracy", "subject"], kind="stable")


def _plot_subjects(table: pd.DataFrame, path: Path) -> None:
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


def _curves(history: pd.DataFrame) -> pd.DataFrame:
    """Mean of each numeric history column per epoch over the folds."""
    h = history.copy()
    if "epoch" not in h.columns:
        h["epoch"] = h.groupby("fold").cumcount() + 1
    numeric = [c for c in h.select_dtypes("number").columns if c != "epoch"]
    return h.groupby("epoch")[numeric].mean()


def _plot_curves(curves: pd.DataFrame, n_folds: int, path: Path) -> None:
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


def print_metrics(results: RunResults, table: pd.DataFrame) -> None:
    """Print the metrics (and the paper's figures where comparable) as a rich table."""
    from rich.console import Console
    from rich.table import Table

    done, n = len(results.folds("done")), len(results.status)
    t = Table(title=f"{done}/{n} folds done, pooled predictions", caption=str(results.run_dir))
    for col in ("part", "n", "Acc [95% CI]", "UAR [95% CI]", "UF1 [95% CI]", "paper UF1",
                "paper UAR"):
        t.add_column(col, justify="left" if col == "part" else "right")
    for row in table.itertuples():
        t.add_row(
            row.part, str(row.n), _ci(row, "acc"), _ci(row, "uar"), _ci(row, "uf1"),
            _fmt(_paper(results, row.part, "uf1")), _fmt(_paper(results, row.part, "uar")),
        )
    Console().print(t)


def _markdown(results: RunResults, table: pd.DataFrame, m: np.ndarray, figures: list[str]) -> str:
    cfg = results.config
    ours = table.set_index("part").to_dict(orient="index")
    done, failed, missing = (results.folds(s) for s in ("done", "failed", "missing"))
    out = [f"# Evaluation report: `{results.run_dir.name}`", ""]
    if failed or missing:
        out += [
            f"**Partial run**: {len(done)} of {len(results.status)} folds finished; the scores "
            "below cover only the finished folds and are not comparable with a full run.",
            "",
        ]
    out += [
        f"Class set `{cfg.data.class_set}` ({', '.join(results.classes)}), "
        f"{len(results.predictions)} test predictions from {len(done)} folds. "
        f"Model: {describe(cfg.baseline)}.",
        "",
        "## Scores (ours)",
        "",
        _md_table(
            ["part", "n", "Acc [95% CI]", "UAR [95% CI]", "UF1 [95% CI]"],
            [(r.part, r.n, _ci(r, "acc"), _ci(r, "uar"), _ci(r, "uf1")) for r in table.itertuples()],
        ),
        "",
        *_uncertainty_note(results, table),
        "## The paper's published figures (not ours)",
        "",
    ]
    if cfg.data.class_set == "composite":
        out += [
            "MSMMT paper (Wang et al.), Table 2, composite set (MEGC2019, 3 classes), LOSO, as "
            "published; the paper does not state how the epoch was chosen.",
            "",
            _md_table(
                ["part", "paper UF1", "paper UAR", "our UF1", "our UAR"],
                [
                    (part, _fmt(v["uf1"]), _fmt(v["uar"]), _fmt(ours.get(part, {}).get("uf1")),
                     _fmt(ours.get(part, {}).get("uar")))
                    for part, v in PAPER_TABLE2.items()
                ],
            ),
            "",
        ]
    else:
        out += ["The paper's Table 2 covers the composite class set only; no figures to compare.", ""]
    out += [
        "## How the scores were obtained",
        "",
        _protocol_note(cfg),
        "",
        "## Folds",
        "",
        f"- done: {len(done)}",
        f"- failed: {len(failed)}" + (f" ({', '.join(failed)})" if failed else ""),
        f"- missing: {len(missing)}" + (f" ({', '.join(missing)})" if missing else ""),
        "",
    ]
    if results.errors:
        out += ["Errors (last line of each fold's error.txt):", ""]
        out += [f"- `{name}`: {msg}" for name, msg in results.errors.items()] + [""]
    if len(results.predictions):
        pc = per_class(m)
        out += [
            "## Per class (pooled)",
            "",
            _md_table(
                ["class", "support", "recall", "precision", "F1"],
                [
                    (c, int(pc["support"][i]), _fmt(pc["recall"][i]), _fmt(pc["precision"][i]),
                     _fmt(pc["f1"][i]))
                    for i, c in enumerate(results.classes)
                ],
            ),
            "",
            "## Confusion matrix (rows: true, columns: predicted)",
            "",
            _md_table(
                ["", *results.classes],
                [(c, *m[i]) for i, c in enumerate(results.classes)],
            ),
            "",
        ]
    if figures:
        out += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    out += [
        f"Files: `{METRICS_FILE}` (scores), `{POOLED_FILE}` (pooled predictions), "
        f"`{CONFIG_FILE}` (the run's config).",
        "",
    ]
    return "\n".join(out)


def write_report(run_dir: str | Path, echo: bool = False) -> Path:
    """Write report.md, metrics.csv, predictions.csv and the figures; return report.md's path.

    Works on a partial run (the report says so). ``echo`` prints the metrics table.
    """
    results = load_run(run_dir)
    run = results.run_dir
    table = metrics_table(results)
    atomic_write_text(run / METRICS_FILE, table.to_csv(index=False))
    atomic_write_text(run / POOLED_FILE, results.predictions.to_csv(index=False))
    p = results.predictions
    m = confusion(_indices(p["true"], results.classes), _indices(p["predicted"], results.classes),
                  len(results.classes))
    figures = []
    if len(p):
        _plot_confusion(m, results.classes, run / CONFUSION_PNG)
        _plot_subjects(_subject_accuracy(p), run / SUBJECT_PNG)
        figures += [CONFUSION_PNG, SUBJECT_PNG]
    if len(results.history):
        _plot_curves(_curves(results.history), len(results.folds("done")), run / CURVES_PNG)
        figures.append(CURVES_PNG)
    path = atomic_write_text(run / REPORT_FILE, _markdown(results, table, m, figures))
    if echo:
        print_metrics(results, table)
    return path
