"""How much the blended model's score depends on the pixel head's weight w (no training).

A blended run stores, per test clip, its ViT part's probabilities (``vit_p_*``) and its pixel
head's (``pixel_p_*``); the model's output is ``p = (1 - w) p_vit + w p_pixel`` with
``w = model.pixel_blend`` (docs/METHOD.md, "Pixel head"), fixed a priori at 0.5. This script
recomputes the pooled UF1 of every RUN for w = 0, 0.1, ..., 1 from the stored parts and pairs
each with w = 0.5 (subject bootstrap on the same resamples), plus two other rules of
combination at no weight at all: the geometric mean (``p ~ sqrt(p_vit p_pixel)``, a log-linear
pool) and the more confident part per clip (the larger maximum probability). It answers
whether the a-priori 0.5 sits on a plateau (a real dataset on which the two parts are
balanced differently loses little) or on a slope. Nothing is tuned here: the weight stays 0.5.

    .venv/bin/python benchmarks/bench_blend_weight.py runs/loso_members2 runs/loso_v6_preset \
        --plot benchmarks/results/blend_weight.png

Writes ``benchmarks/results/blend_weight.csv`` (one row per run and rule) and, with
``--plot``, the UF1-against-w curves and their differences with w = 0.5 (paired 95% bands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.evaluation.results import load_run
from msmmt.evaluation.uncertainty import paired_difference
from msmmt.model.pixel_head import blend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import probability_run, record, uf1  # noqa: E402

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def rules(vit: np.ndarray, pixel: np.ndarray) -> dict[str, np.ndarray]:
    """``name -> (N, C)`` combined probabilities (or scores with the same argmax) per rule."""
    out = {f"w={w:g}": blend(vit, pixel, w) for w in WEIGHTS}
    out["geometric"] = np.sqrt(vit * pixel)
    out["confident"] = np.where((vit.max(1) >= pixel.max(1))[:, None], vit, pixel)
    return out


def sensitivity(run: Path) -> list[dict]:
    """One row per rule of ``run``: its UF1 and its paired difference with w = 0.5."""
    results = load_run(run)
    table, classes = results.predictions, results.classes
    missing = [c for c in (f"{p}_p_{k}" for p in ("vit", "pixel") for k in classes)
               if c not in table]
    if missing:
        raise SystemExit(f"{run}: not a blended run (no {', '.join(missing)} in predictions.csv)")
    vit = table[[f"vit_p_{c}" for c in classes]].to_numpy()
    pixel = table[[f"pixel_p_{c}" for c in classes]].to_numpy()
    combined = {name: probability_run(table, classes, p) for name, p in rules(vit, pixel).items()}
    reference = combined["w=0.5"]
    rows = []
    for name, pred in combined.items():
        d = paired_difference(pred, reference)
        rows.append({"run": f"{run.parent.name}/{run.name}", "rule": name,
                     "uf1": round(uf1(pred), 4),
                     "minus_w0.5": round(d.difference, 4), "lo": round(d.lo, 4),
                     "hi": round(d.hi, 4), "p_better": round(d.p_a_better, 3)})
    return rows


def plot(rows: pd.DataFrame, path: Path) -> None:
    """Left: UF1 against w per run. Right: UF1(w) - UF1(0.5) with its paired 95% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.0), sharex=True)
    for run, part in rows.groupby("run", sort=False):
        curve = part[part["rule"].str.startswith("w=")]
        w = curve["rule"].str[2:].astype(float).to_numpy()
        line, = left.plot(w, curve["uf1"], marker="o", label=run)
        right.plot(w, curve["minus_w0.5"], marker="o", color=line.get_color())
        right.fill_between(w, curve["lo"], curve["hi"], color=line.get_color(), alpha=0.12,
                           linewidth=0)
    for ax in (left, right):
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("pixel head weight w (0: ViT part only, 1: pixel head only)")
    right.axhline(0.0, color="black", linewidth=0.8)
    left.set_ylabel("UF1")
    right.set_ylabel("UF1(w) - UF1(0.5), paired 95% band")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="Finished blended runs.")
    ap.add_argument("--plot", type=Path, help="Write the curves to this PNG.")
    args = ap.parse_args()
    rows = [row for run in args.runs for row in sensitivity(run)]
    record("blend_weight", rows)
    if args.plot:
        plot(pd.DataFrame(rows), args.plot)
        print(f"-> {args.plot}")


if __name__ == "__main__":
    main()
