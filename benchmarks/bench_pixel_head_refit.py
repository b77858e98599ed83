"""Refit the pixel head of a finished blended run with the current code, keeping its ViT.

The pixel head (``model.pixel_blend``) is fitted after the ViT and never changes the ViT's
training (``tests/test_pixel_head.py``), so a change to the head alone can be measured on a
finished LOSO run without training again: for every fold of RUN this script builds the
model of RUN's config (its ViT weights are not needed), fits the head on the fold's training
clips with :func:`msmmt.engine.pixel_head.fit_pixel_head`, scores the test clips with it,
and blends them with the ViT probabilities RUN saved (``vit_p_*``). The result is written as
a copy of RUN (same config, samples and folds; ``predictions.csv`` replaced, a line in
``REFIT.txt`` saying so), which ``msmmt compare RUN OUT OUT:pixel`` pairs with RUN.

    .venv/bin/python benchmarks/bench_pixel_head_refit.py runs/loso_cpu_small \
        --dataset composite-release --data DATA --out runs/loso_cpu_small_refit
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from msmmt.config import load_config
from msmmt.core.labels import class_names
from msmmt.core.threads import limit_threads
from msmmt.data.readers import read_for_training
from msmmt.engine.pixel_head import fit_pixel_head
from msmmt.engine.trainer import predict_parts
from msmmt.evaluation.runner import build_folds
from msmmt.model import build_model
from msmmt.model.pixel_head import blend


def refit(run: Path, dataset: str, data: Path, out: Path) -> list[dict[str, object]]:
    cfg = load_config(run / "config.yaml")
    classes = class_names(cfg.data.class_set)
    samples = {s.key: s for s in read_for_training(dataset, data, cfg.data)}
    folds = build_folds(cfg, list(samples.values()))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run, out)
    for stale in [*out.glob("*.png"), out / "report.md", out / "metrics.csv", out / "predictions.csv"]:
        stale.unlink(missing_ok=True)  # the run's pooled outputs; the folds are rewritten
    (out / "REFIT.txt").write_text(
        f"ViT part from {run}; pixel head refitted by benchmarks/bench_pixel_head_refit.py\n"
    )
    rows = []
    for fold in folds:
        train = [samples[k] for k in fold.train_keys]
        path = out / "folds" / fold.name / "predictions.csv"
        table = pd.read_csv(path, dtype={"key": str})
        test = [samples[k] for k in table["key"]]
        model = build_model(cfg.model.model_copy(update={"pretrained": None})).eval()
        info = fit_pixel_head(model, train, cfg)
        pixel = predict_parts(model, test, cfg)["pixel"]
        vit = table[[f"vit_p_{c}" for c in classes]].to_numpy()
        mixed = blend(vit, pixel, cfg.model.pixel_blend)
        for j, c in enumerate(classes):
            table[f"p_{c}"], table[f"pixel_p_{c}"] = mixed[:, j], pixel[:, j]
        table["predicted"] = [classes[i] for i in mixed.argmax(axis=1)]
        table.to_csv(path, index=False)
        rows.append({"fold": fold.name, "n_test": len(test), **info})
        print(f"{fold.name}: {len(train)} train, {len(test)} test, head train acc {info['pixel_train_acc']:.3f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="A finished LOSO run of a blended model.")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    limit_threads(1)
    rows = refit(args.run, args.dataset, args.data, args.out)
    print(f"{len(rows)} folds; mean head training accuracy "
          f"{np.mean([r['pixel_train_acc'] for r in rows]):.3f} -> {args.out}")


if __name__ == "__main__":
    main()
