"""A run's report: ``report.md``, ``metrics.csv``, pooled ``predictions.csv`` and the figures.

:func:`write_report` reads ``RUN/folds/*/predictions.csv`` of every fold with a done marker
(:mod:`msmmt.evaluation.results`) and writes, beside them:

- ``report.md``: Acc / UAR / UF1 on the predictions pooled over all folds (the whole set
  and, when several datasets are present, each part), the paper's Table 2 figures clearly
  labelled as the paper's, how the config departs from the paper's method, per-class
  scores, the confusion matrix, folds done / missing / failed, how the run avoided
  test-subject leaks, and the environment the folds ran in (libraries, CPU, threads; the
  entries in which folds differ, if they do: :mod:`msmmt.core.environment`);
- ``metrics.csv`` (one row per part), ``predictions.csv`` (pooled, with the fold);
- the figures of :mod:`msmmt.evaluation.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.config import Config, departures_from_paper
from msmmt.core.environment import consensus, describe_varying, varying
from msmmt.core.io import atomic_write_text
from msmmt.engine.metrics import per_class
from msmmt.evaluation.figures import write_figures
from msmmt.evaluation.results import (
    PAPER_TABLE2,
    RunResults,
    load_run,
    metrics_table,
    pooled_confusion,
)
from msmmt.evaluation.runner import CONFIG_FILE
from msmmt.evaluation.uncertainty import N_BOOT, noise_note

__all__ = [
    "METRICS_FILE",
    "POOLED_FILE",
    "REPORT_FILE",
    "environment_warning",
    "format_score",
    "write_report",
]

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.csv"
POOLED_FILE = "predictions.csv"


def format_score(x: float | None) -> str:
    """A score with 4 decimals; a dash for a missing or undefined one."""
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4f}"


def format_ci(row, metric: str) -> str:
    """``0.6420 [0.580, 0.702]``: the score of a metrics-table row and its 95% interval."""
    lo, hi = getattr(row, f"{metric}_lo"), getattr(row, f"{metric}_hi")
    value = format_score(getattr(row, metric))
    return value if pd.isna(lo) else f"{value} [{lo:.3f}, {hi:.3f}]"


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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _protocol_note(cfg: Config) -> str:
    proto = (
        "leave-one-subject-out (each subject is the test set once)"
        if cfg.eval.protocol == "loso"
        else f"{cfg.eval.k}-fold cross-validation grouped by subject (seed {cfg.seed})"
    )
    if cfg.eval.early_stopping:
        stop = (
            f"early stopping (patience {cfg.train.patience}) on a validation set of "
            f"{cfg.eval.val_fraction:.0%} of the *training* subjects of each fold, drawn with "
            f"seed {cfg.seed}; the test subject is never used for it"
        )
    else:
        stop = (
            f"a fixed {cfg.train.epochs} epochs; the last epoch's model is tested, "
            "no epoch is selected"
        )
    if cfg.baseline.kind != "none":
        stop = f"baseline {cfg.baseline.describe()}, not MSMMT"
    return (
        f"Protocol: {proto}. Training: {stop}. Every fold is checked before it runs: no "
        "subject is in both its test set and its training or validation set. No model choice "
        "(epoch, threshold, hyper-parameter) looked at a test subject. Acc, UAR (mean per-class "
        "recall) and UF1 (mean per-class F1) are computed once on the predictions pooled over "
        "all folds, never averaged over folds; a class absent from the pooled set counts as 0."
    )


def _departures(cfg: Config) -> list[str]:
    lines = departures_from_paper(cfg)
    if not lines:
        return ["The config follows the `paper` preset in every setting of the method.", ""]
    return [
        "This is **not the paper's method as published**: the config departs from the "
        "`paper` preset in these settings of the method:",
        "",
        *(f"- `{line}`" for line in lines),
        "",
    ]


def _paper_section(results: RunResults, table: pd.DataFrame) -> list[str]:
    if results.config.data.class_set != "composite":
        return ["The paper's Table 2 covers the composite class set only; no figures to compare.", ""]
    ours = table.set_index("part").to_dict(orient="index")
    rows = [
        (part, format_score(v["uf1"]), format_score(v["uar"]),
         format_score(ours.get(part, {}).get("uf1")), format_score(ours.get(part, {}).get("uar")))
        for part, v in PAPER_TABLE2.items()
    ]
    return [
        "MSMMT paper (Wang et al.), Table 2, composite set (MEGC2019, 3 classes), LOSO, as "
        "published; the paper does not state how the epoch was chosen.",
        "",
        _md_table(["part", "paper UF1", "paper UAR", "our UF1", "our UAR"], rows),
        "",
    ]


def _folds_section(results: RunResults) -> list[str]:
    failed, missing = results.folds("failed"), results.folds("missing")
    out = [
        "## Folds",
        "",
        f"- done: {len(results.folds('done'))}",
        f"- failed: {len(failed)}" + (f" ({', '.join(failed)})" if failed else ""),
        f"- missing: {len(missing)}" + (f" ({', '.join(missing)})" if missing else ""),
        "",
    ]
    if results.errors:
        out += ["Errors (last line of each fold's error.txt):", ""]
        out += [f"- `{name}`: {msg}" for name, msg in results.errors.items()] + [""]
    return out


def environment_warning(results: RunResults) -> list[str]:
    """Empty when every finished fold recorded the same environment; else a lead line and one
    line per entry in which they differ (library versions, CPU, threads, msmmt's commit)."""
    spread = varying(results.environments)
    if not spread:
        return []
    return ["The folds were not all computed in the same environment; the scores may include "
            "the effect of these differences:", *describe_varying(spread, "fold")]


def _environment_section(results: RunResults) -> list[str]:
    common = consensus(results.environments)
    out = ["## Environment", ""]
    if common is None:
        return out + ["Not recorded: the folds were finished by an msmmt that did not record it.", ""]
    warning = environment_warning(results)
    out += ["What the folds ran with (`done.json` of each fold; scores depend on library versions "
            "and the CPU as well as on the code, docs/RELIABILITY.md):", "",
            _md_table(["entry", "value"], list(common.items())), ""]
    if warning:
        out += [f"**{warning[0]}**", ""] + [f"- {line}" for line in warning[1:]] + [""]
    return out


def _class_section(classes: Sequence[str], m: np.ndarray) -> list[str]:
    pc = per_class(m)
    rows = [
        (c, int(pc["support"][i]), format_score(pc["recall"][i]),
         format_score(pc["precision"][i]), format_score(pc["f1"][i]))
        for i, c in enumerate(classes)
    ]
    return [
        "## Per class (pooled)",
        "",
        _md_table(["class", "support", "recall", "precision", "F1"], rows),
        "",
        "## Confusion matrix (rows: true, columns: predicted)",
        "",
        _md_table(["", *classes], [(c, *m[i]) for i, c in enumerate(classes)]),
        "",
    ]


def _header(results: RunResults, table: pd.DataFrame) -> list[str]:
    done = results.folds("done")
    out = [f"# Evaluation report: `{results.run_dir.name}`", ""]
    if len(done) < len(results.status):
        out += [
            f"**Partial run**: {len(done)} of {len(results.status)} folds finished; the scores "
            "below cover only the finished folds and are not comparable with a full run.",
            "",
        ]
    rows = [
        (r.part, r.n, format_ci(r, "acc"), format_ci(r, "uar"), format_ci(r, "uf1"))
        for r in table.itertuples()
    ]
    return out + [
        f"Class set `{results.config.data.class_set}` ({', '.join(results.classes)}), "
        f"{len(results.predictions)} test predictions from {len(done)} folds. "
        f"Model: {results.config.baseline.describe()}.",
        "",
        "## Scores (ours)",
        "",
        _md_table(["part", "n", "Acc [95% CI]", "UAR [95% CI]", "UF1 [95% CI]"], rows),
        "",
        *_uncertainty_note(results, table),
    ]


def _markdown(results: RunResults, table: pd.DataFrame, figures: list[str]) -> str:
    cfg = results.config
    out = _header(results, table)
    out += ["## The paper's published figures (not ours)", "", *_paper_section(results, table)]
    out += ["## Departures from the paper's method", "", *_departures(cfg)]
    out += ["## How the scores were obtained", "", _protocol_note(cfg), ""]
    out += _folds_section(results)
    if len(results.predictions):
        out += _class_section(results.classes, pooled_confusion(results))
    if figures:
        out += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    if results.environments:
        out += _environment_section(results)
    out += [
        f"Files: `{METRICS_FILE}` (scores), `{POOLED_FILE}` (pooled predictions), "
        f"`{CONFIG_FILE}` (the run's config).",
        "",
    ]
    return "\n".join(out)


def write_report(run_dir: str | Path) -> Path:
    """Write report.md, metrics.csv, predictions.csv and the figures; return report.md's path.

    Works on a partial run (the report says so).
    """
    results = load_run(run_dir)
    run = results.run_dir
    table = metrics_table(results)
    atomic_write_text(run / METRICS_FILE, table.to_csv(index=False))
    atomic_write_text(run / POOLED_FILE, results.predictions.to_csv(index=False))
    figures = write_figures(results)
    return atomic_write_text(run / REPORT_FILE, _markdown(results, table, figures))
