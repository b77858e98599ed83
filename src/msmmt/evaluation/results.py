"""A run directory's results: the fold plan and states, the pooled predictions and
histories of the finished folds (from any number of shards), and the scores on them.

The scores are computed once on the predictions pooled over all finished folds, never
averaged over folds (``docs/METHOD.md``, "Metrics"). The paper's published figures are
here too, for comparison, never mixed with ours.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.config import Config, ConfigError, load_config
from msmmt.core.labels import class_names, label_indices
from msmmt.core.records import DatasetError
from msmmt.engine.metrics import confusion, scores, scores_by_group
from msmmt.evaluation.runner import (
    CONFIG_FILE,
    DONE_FILE,
    ERROR_FILE,
    FOLDS_DIR,
    HISTORY_FILE,
    PLAN_FILE,
    PREDICTIONS_FILE,
    fold_status,
)
from msmmt.evaluation.uncertainty import METRICS, part_intervals

__all__ = [
    "PAPER_TABLE2",
    "RunResults",
    "load_run",
    "metrics_table",
    "paper_figure",
    "pooled_confusion",
    "select_component",
    "subject_accuracy",
    "training_curves",
]

PAPER_TABLE2: dict[str, dict[str, float]] = {
    "all": {"uf1": 0.8160, "uar": 0.8191},
    "smic": {"uf1": 0.7651, "uar": 0.7780},
    "casme2": {"uf1": 0.9071, "uar": 0.8878},
    "samm": {"uf1": 0.7392, "uar": 0.7163},
}
"""MSMMT paper (Wang et al.), Table 2: composite set (MEGC2019, 3 classes), LOSO, UF1 / UAR
for the full set and each part, as published (protocol details not stated)."""

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
    environments: dict[str, dict[str, str] | None] = field(default_factory=dict)
    """Finished fold -> the environment its done.json records (None: not recorded)."""

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


def _fold_environment(fold_dir: Path) -> dict[str, str] | None:
    path = fold_dir / DONE_FILE
    try:
        env = json.loads(path.read_text()).get("environment")
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise DatasetError(f"{path}: unreadable record of a finished fold: {err}") from None
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else None


def load_run(run_dir: str | Path) -> RunResults:
    """Read a run directory written by :func:`msmmt.evaluation.runner.run_folds`."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file() or not (run / PLAN_FILE).is_file():
        raise FileNotFoundError(
            f"{run}: not a run directory (no {CONFIG_FILE} / {PLAN_FILE}); run `msmmt loso` first"
        )
    try:
        cfg = load_config(run / CONFIG_FILE)
    except ConfigError as err:
        raise DatasetError(f"{err} (the saved config of run {run})") from None
    classes = class_names(cfg.data.class_set)
    try:
        plan = pd.read_csv(run / PLAN_FILE, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"{run / PLAN_FILE}: unreadable fold plan: {err}") from None
    if "fold" not in plan.columns:
        raise DatasetError(f"{run / PLAN_FILE}: no fold column; not a fold plan")
    names = list(dict.fromkeys(plan["fold"]))
    status = {name: fold_status(run, name) for name in names}
    preds, hists, errors, environments = [], [], {}, {}
    for name, state in status.items():
        d = run / FOLDS_DIR / name
        if state == "done":
            pred, hist = _read_fold(d, classes)
            preds.append(pred)
            hists.append(hist)
            environments[name] = _fold_environment(d)
        elif state == "failed":
            errors[name] = _last_line(d / ERROR_FILE)
    if preds:
        predictions = pd.concat(preds, ignore_index=True)
    else:
        predictions = pd.DataFrame(columns=["fold", "key", "subject", "dataset", "true", "predicted"])
    hists = [h for h in hists if len(h)]
    history = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    return RunResults(run, cfg, classes, status, predictions, history, errors, environments)


def select_component(results: RunResults, component: str) -> RunResults:
    """The run as if its model were one component of its blend: the ``<component>_p_<class>``
    columns a pixel-blended MSMMT writes (``vit``, ``pixel``) become the probabilities and
    the prediction is their argmax. Raises DatasetError when the run has no such columns."""
    p = results.predictions
    columns = [f"{component}_p_{c}" for c in results.classes]
    missing = [c for c in columns if c not in p.columns]
    if missing:
        raise DatasetError(
            f"{results.run_dir}: no {component!r} component in its predictions (missing "
            f"{missing[0]}); only runs of a blended model (model.pixel_blend) have parts"
        )
    out = p.copy()
    for c, col in zip(results.classes, columns, strict=True):
        out[f"p_{c}"] = p[col]
    out["predicted"] = [results.classes[i] for i in p[columns].to_numpy().argmax(axis=1)]
    return replace(results, predictions=out)


CI_COLUMNS = [f"{m}_{end}" for m in METRICS for end in ("lo", "hi")]


def metrics_table(results: RunResults) -> pd.DataFrame:
    """Rows ``all`` and, with several datasets, one per dataset: part, n, acc, uar, uf1 and
    their 95% subject-bootstrap intervals ``<metric>_lo`` / ``<metric>_hi``
    (:mod:`msmmt.evaluation.uncertainty`)."""
    p = results.predictions
    c = len(results.classes)
    t, y = label_indices(p["true"].tolist(), results.classes), label_indices(
        p["predicted"].tolist(), results.classes
    )
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


def pooled_confusion(results: RunResults) -> np.ndarray:
    """Confusion matrix (true x predicted counts) of the pooled predictions."""
    p, c = results.predictions, results.classes
    return confusion(
        label_indices(p["true"].tolist(), c), label_indices(p["predicted"].tolist(), c), len(c)
    )


def paper_figure(results: RunResults, part: str, metric: str) -> float | None:
    """The paper's figure for this part, only for the composite class set it reports."""
    if results.config.data.class_set != "composite":
        return None
    return PAPER_TABLE2.get(part, {}).get(metric)


def subject_accuracy(pred: pd.DataFrame) -> pd.DataFrame:
    """Per test subject: dataset, number of clips and accuracy, worst first."""
    correct = (pred["true"] == pred["predicted"]).astype(float)
    table = pred.assign(correct=correct).groupby("subject", sort=True).agg(
        dataset=("dataset", "first"), n=("correct", "size"), accuracy=("correct", "mean")
    )
    return table.reset_index().sort_values(["accuracy", "subject"], kind="stable")


def training_curves(history: pd.DataFrame) -> pd.DataFrame:
    """Mean of each numeric history column per epoch over the folds."""
    h = history.copy()
    if "epoch" not in h.columns:
        h["epoch"] = h.groupby("fold").cumcount() + 1
    numeric = [c for c in h.select_dtypes("number").columns if c != "epoch"]
    return h.groupby("epoch")[numeric].mean()
