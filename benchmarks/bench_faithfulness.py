"""Faithfulness of the patch weights of trained models, per patch-weighting variant.

For each checkpoint (``msmmt train`` folders, one per ``model.patch_weighting``
variant, same seed and data) and the preprocessed clips of held-out synthetic
subjects, it prints and records in ``results/faithfulness.csv``
(:mod:`msmmt.inference.faithfulness`):

* the pointing game: how often the top-weighted patch lies in the moving region (the
  ``--fraction`` of patches with the largest mean optical strain), per modality at
  scale 1 and averaged over every modality and scale; chance is about ``--fraction``;
* deletion: the drop of the predicted class's probability when the k top-weighted
  patches of each modality's scale-1 grid are masked, against k random patches
  (``--random`` draws), at each k of ``--ks``, and their mean over k (``area``), with a
  clip-bootstrap 95% interval of the difference ``area_top - area_rand``.

A ``none`` model has no weights; it is explained by switching it to ``paper``, which
computes the rollout without changing the output (checked here), so ``none`` and
``paper`` rows are post-hoc rollouts, the others the weights the model applied.
The held-out accuracy is printed for context.

    PYTHONPATH=src python benchmarks/bench_faithfulness.py \\
        --models runs/pw/attention runs/pw/post-norm runs/pw/none runs/pw/paper \\
        --data cache_heldout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.core.labels import class_names  # noqa: E402
from msmmt.data.readers import read_dataset  # noqa: E402
from msmmt.data.readers.composite import filter_class_set  # noqa: E402
from msmmt.engine.dataset import load_image, to_tensor  # noqa: E402
from msmmt.inference.faithfulness import deletion_drops, moving_region, pointing_hits  # noqa: E402
from msmmt.model.checkpoint import load_checkpoint  # noqa: E402


def load_images(data: Path, cfg) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """The held-out clips' images at the model's base size, and their label indices."""
    samples = filter_class_set(read_dataset("precomputed", data), cfg.data.class_set)
    size = cfg.model.img_size
    images = {
        m: torch.stack([to_tensor(load_image(getattr(s, f"{m}_image"), size), size) for s in samples])
        for m in ("texture", "motion")
    }
    names = class_names(cfg.data.class_set)
    return images, np.array([names.index(s.label) for s in samples])


def explainable(model, variant: str):
    """``model`` with patch weights; a ``none`` model switched to the inert ``paper``."""
    if variant != "none":
        return model
    for backbone in model.backbones.values():
        backbone.patch_weighting = "paper"
    return model


def pointing(model, images, cfg, fraction: float) -> dict[str, float]:
    with torch.no_grad():
        weights = model(**images).patch_weights
    patch = next(iter(model.backbones.values())).patch_size[0]
    hits, chance = {}, []
    for key, w in weights.items():
        scale = int(key.split("@")[1])
        region = moving_region(images["motion"], cfg.model.img_size, scale, patch, fraction)
        hits[key] = pointing_hits(w, region).float().mean().item()
        chance.append(region.float().mean().item())
    out = {f"point_{m}@1": hits[f"{m}@1"] for m in ("texture", "motion")}
    out["point_all"] = float(np.mean(list(hits.values())))
    out["chance"] = float(np.mean(chance))
    return out


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` over clips drawn with replacement."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="held-out preprocessed cache")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--random", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for folder in args.models:
        model, cfg, _ = load_checkpoint(folder)
        variant = cfg.model.patch_weighting
        images, labels = load_images(args.data, cfg)
        with torch.no_grad():
            before = model(**images).logits
            model = explainable(model, variant)
            # inert up to LayerNorm's eps (a trained demo model: 1.7e-4 of logits ~4)
            assert torch.allclose(model(**images).logits, before, atol=1e-3)
        top, rand = deletion_drops(model, images, args.ks, args.random)
        row = {"model": f"{folder.parent.name}/{folder.name}", "variant": variant,
               "seed": cfg.seed, "clips": len(labels),
               "accuracy": float((before.argmax(1).numpy() == labels).mean())}
        row |= pointing(model, images, cfg, args.fraction)
        for i, k in enumerate(args.ks):
            row[f"top{k}"], row[f"rand{k}"] = top[:, i].mean(), rand[:, i].mean()
        row["area_top"], row["area_rand"] = top.mean(), rand.mean()
        row["diff_lo"], row["diff_hi"] = bootstrap_ci(top.mean(1) - rand.mean(1))
        rows.append(row)
    record("faithfulness", rows)


if __name__ == "__main__":
    main()
