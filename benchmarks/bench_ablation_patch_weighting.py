"""The paper's ablation, with and without patch weighting, for each variant, under LOSO.

For each ``model.patch_weighting`` variant it runs (or, when already finished, reads)
``msmmt loso`` on the same preprocessed data with the same preset, seed and folds
(``--set model.patch_weighting=VARIANT``), then reports UF1 and UAR of the pooled
predictions with a subject-bootstrap 95% interval: subjects are drawn with
replacement (``--boot`` times), their clips pooled and scored; the same draws serve
every variant, so the difference to ``none`` gets a paired interval too. Results go to
``results/ablation_patch_weighting.csv``.

    PYTHONPATH=src python benchmarks/bench_ablation_patch_weighting.py \\
        --data cache --out runs/ablation --preset demo
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.engine.metrics import scores  # noqa: E402
from msmmt.model.patch_weighting import VARIANTS  # noqa: E402


def run_loso(variant: str, args: argparse.Namespace) -> Path:
    """``msmmt loso`` for one variant (resumes; finished folds are skipped)."""
    out = args.out / f"loso-{variant}"
    if not (out / "predictions.csv").exists():
        command = [sys.executable, "-m", "msmmt", "--threads", "1", "-q", "-c", args.preset,
                   "--seed", str(args.seed), "--set", f"model.patch_weighting={variant}",
                   "loso", "--data", str(args.data), "--out", str(out)]
        subprocess.run(command, check=True)
    return out / "predictions.csv"


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Subjects, true and predicted class indices of a run's pooled predictions."""
    with path.open() as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["key"])
    classes = sorted({r["true"] for r in rows} | {r["predicted"] for r in rows})
    subjects = np.array([r["subject"] for r in rows])
    y = np.array([classes.index(r["true"]) for r in rows])
    p = np.array([classes.index(r["predicted"]) for r in rows])
    return subjects, y, p, classes


def bootstrap_draws(subjects: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` clip index sets, each the clips of subjects drawn with replacement."""
    names = np.unique(subjects)
    members = [np.flatnonzero(subjects == s) for s in names]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
            for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--boot", type=int, default=2000)
    args = parser.parse_args()
    runs = {v: read_predictions(run_loso(v, args)) for v in args.variants}
    subjects, y, _, classes = runs[args.variants[0]]
    for v, (s, y_v, _, _) in runs.items():
        if not (np.array_equal(s, subjects) and np.array_equal(y_v, y)):
            raise SystemExit(f"{v}: the runs do not hold the same clips")
    draws = bootstrap_draws(subjects, args.boot, args.seed)
    n = len(classes)
    boot = {v: np.array([scores(y[d], p[d], n)["uf1"] for d in draws]) for v, (_, _, p, _) in runs.items()}
    base = boot.get("none")
    rows = []
    for v, (_, _, p, _) in runs.items():
        s = scores(y, p, n)
        lo, hi = np.percentile(boot[v], [2.5, 97.5])
        row = {"variant": v, "preset": args.preset, "clips": s["n"],
               "subjects": len(np.unique(subjects)), "uf1": s["uf1"], "uf1_lo": lo, "uf1_hi": hi,
               "uar": s["uar"]}
        if base is not None:
            d_lo, d_hi = np.percentile(boot[v] - base, [2.5, 97.5])
            row |= {"d_uf1_vs_none": s["uf1"] - scores(y, runs["none"][2], n)["uf1"],
                    "d_lo": d_lo, "d_hi": d_hi}
        rows.append(row)
    record("ablation_patch_weighting", rows)


if __name__ == "__main__":
    main()
