"""Shared helpers for the benchmark scripts: timing, machine info, result files, and the
scoring of class probabilities recomputed from finished runs.

Every script prints a table and appends its rows to ``benchmarks/results/<name>.csv``
with the machine, library versions and date, so runs on different days and
machines can be compared. Optimisations are always timed against their baseline
in the same run and reported as a ratio, since absolute times drift.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.core.environment import environment
from msmmt.core.io import atomic_path
from msmmt.engine.metrics import scores
from msmmt.evaluation.uncertainty import RunPredictions, run_predictions

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, str]:
    """The date, host, cores, threads and device, and :func:`msmmt.core.environment.environment`
    (msmmt's commit, the CPU, the library versions)."""
    import torch

    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        **environment(),
    }


def probability_run(table: pd.DataFrame, classes: Sequence[str], p: np.ndarray) -> RunPredictions:
    """The predictions ``argmax p`` of the clips of ``table`` (columns key, subject, true; the
    rows of ``p`` in its order) as a run, for :mod:`msmmt.evaluation.uncertainty`."""
    frame = table[["key", "subject", "true"]].assign(
        predicted=[classes[i] for i in p.argmax(axis=1)])
    return run_predictions([frame], classes)


def uf1(run: RunPredictions) -> float:
    """The pooled UF1 of a single-seed run."""
    return float(scores(run.true, run.predicted[0], run.n_classes)["uf1"])


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def record(name: str, rows: list[dict[str, object]]) -> Path:
    """Print ``rows`` as a table and append them, with machine info, to results/<name>.csv."""
    if not rows:
        return RESULTS / f"{name}.csv"
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))
    info = machine()
    path = RESULTS / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{**info, **{k: _fmt(v) for k, v in r.items()}} for r in rows])
    if path.exists():  # columns added since (e.g. more library versions) widen the file
        table = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False), table])
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    print(f"-> {path}")
    return path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
