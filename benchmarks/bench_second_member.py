"""Is a second seed the best second member? The seed ensemble against members of other kinds.

``cpu-small`` averages two ViTs of different seeds and blends the pixel head in
(docs/METHOD.md, "Seed ensemble", "Pixel head")::

    p = (1 - w) mean(p_vit_1, p_vit_2) + w p_pixel

Averaging models of *different* kinds usually gains more than averaging seeds of one kind,
because their errors are less alike. This script asks that of finished LOSO runs, without
training anything: with the first network's run ``FIRST`` (one ViT + pixel head), the seed
ensemble ``ENSEMBLE`` (``benchmarks/bench_seed_ensemble.py``) and the runs ``OTHER`` of
other kinds (baselines: STSTNet, an SVM, ...), all on the same folds, it scores

- ``FIRST's ViT + OTHER``: ``p = (1 - w) mean(p_vit_1, p_other) + w p_pixel`` (the other
  kind replaces the second seed: about the same cost when the other is STSTNet),
- ``both ViTs + OTHER``: ``p = (1 - w) mean(p_vit_1, p_vit_2, p_other) + w p_pixel``,

each paired with the seed ensemble on the same subject resamples. ``w`` is the runs'
``model.pixel_blend``; nothing is tuned.

    .venv/bin/python benchmarks/bench_second_member.py runs/loso_m1 runs/loso_members2 \
        runs/loso_ststnet runs/loso_svm

Appends one row per combination to ``benchmarks/results/second_member.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.core.records import DatasetError
from msmmt.evaluation.results import RunResults, load_run, select_component
from msmmt.evaluation.uncertainty import bootstrap_interval, paired_difference
from msmmt.model.pixel_head import blend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import probability_run, record  # noqa: E402


def _probabilities(run: RunResults, folds: pd.Series, component: str | None = None) -> np.ndarray:
    """``(N, C)`` probabilities of ``run`` for the clips of ``folds`` (key -> fold, the first
    run's), in that order: its model's, or those of one component of its blend (``vit``,
    ``pixel``; :func:`msmmt.evaluation.results.select_component`). Every clip must have been
    tested in the same fold as in the first run."""
    if component is not None:
        run = select_component(run, component)
    table = run.predictions.set_index("key")
    if set(table.index) != set(folds.index) or len(table) != len(folds):
        raise SystemExit(f"{run.run_dir}: it tested other clips than the first run")
    if not table.loc[folds.index, "fold"].equals(folds):
        raise SystemExit(f"{run.run_dir}: its folds are not the first run's")
    return table.loc[folds.index, [f"p_{c}" for c in run.classes]].to_numpy()


def combinations(first: Path, ensemble: Path, others: list[Path]) -> list[dict]:
    """Rows: the seed ensemble, then per other run its two combinations (module doc)."""
    a, e = load_run(first), load_run(ensemble)
    table = a.predictions
    folds = table.set_index("key")["fold"]
    w = a.config.model.pixel_blend
    if e.config.model.members != 2:
        raise SystemExit(f"{ensemble}: not a two-network ensemble")
    vit_1, pixel = _probabilities(a, folds, "vit"), _probabilities(a, folds, "pixel")
    vit_pair = _probabilities(e, folds, "vit")  # mean of the ensemble's two ViTs
    if not np.allclose(_probabilities(e, folds, "pixel"), pixel, atol=1e-6):
        raise SystemExit(f"{ensemble}: its pixel head is not {first}'s")
    vit_2 = 2.0 * vit_pair - vit_1
    if vit_2.min() < -1e-6 or not np.allclose(vit_2.sum(axis=1), 1.0, atol=1e-5):
        raise SystemExit(f"{ensemble}: {first}'s network is not one of its members")
    combined = {f"{ensemble.name} (seed ensemble)": blend(vit_pair, pixel, w)}
    for other in others:
        p = _probabilities(load_run(other), folds)
        combined[f"{first.name} ViT + {other.name}"] = blend((vit_1 + p) / 2, pixel, w)
        combined[f"both ViTs + {other.name}"] = blend((vit_1 + vit_2 + p) / 3, pixel, w)
    runs = {name: probability_run(table, a.classes, p) for name, p in combined.items()}
    reference = next(iter(runs.values()))
    rows = []
    for name, run in runs.items():
        point, lo, hi = bootstrap_interval(run)["uf1"]
        d = paired_difference(run, reference)
        rows.append({"combination": name, "uf1": round(point, 4),
                     "uf1_ci": f"[{lo:.3f}, {hi:.3f}]",
                     "minus_seed_ensemble": round(d.difference, 4),
                     "diff_ci": f"[{d.lo:+.3f}, {d.hi:+.3f}]", "p_better": round(d.p_a_better, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", type=Path, help="The first network's run (one ViT + pixel head).")
    ap.add_argument("ensemble", type=Path, help="The seed ensemble (model.members: 2) built on it.")
    ap.add_argument("others", type=Path, nargs="+", help="Runs of other kinds, same folds.")
    args = ap.parse_args()
    try:
        rows = combinations(args.first, args.ensemble, args.others)
    except (FileNotFoundError, DatasetError) as err:
        raise SystemExit(str(err)) from None
    record("second_member", rows)


if __name__ == "__main__":
    main()
