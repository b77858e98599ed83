"""How much each patch-weighting variant changes the logits, with the same weights.

For each config (``cpu-small``, ``paper`` = two ViT-B/16, random init, no download) one
model is built; for each ``model.patch_weighting`` variant the same weights are run
(the variant is switched on the built model, it has no parameters of its own) on the
same random clips, and ``max |logit - logit_none|`` is recorded, with

* ``own_g``: the weights g the rollout gives (near 1 everywhere in an untrained
  model, whose attention is near uniform);
* ``random_g``: g drawn uniformly in [0.05, 1] per patch, so a variant's effect is
  not hidden by g being close to 1;

and, with ``--models``, for trained checkpoints (their own g, on ``--data`` clips):
how much the trained model's output moves when its weighting is switched off
(``none``), and the range of its g (``g_min``, ``g_mean``: means over clips and maps of
each map's smallest and mean weight). ``logit_std`` gives the scale of the logits. Results go to
``results/patch_weighting.csv``.

    PYTHONPATH=src python benchmarks/bench_patch_weighting.py
    PYTHONPATH=src python benchmarks/bench_patch_weighting.py --configs cpu-small \\
        --models runs/pw/attention runs/pw/post-norm --data cache_heldout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.config import load_config  # noqa: E402
from msmmt.model import build_model  # noqa: E402
from msmmt.model.patch_weighting import VARIANTS  # noqa: E402

BATCH = {"paper": 2}


def set_variant(model, variant: str) -> None:
    for backbone in model.backbones.values():
        backbone.patch_weighting = variant


def logits(model, images, variant: str, random_g: bool) -> torch.Tensor:
    set_variant(model, variant)
    if not random_g:
        with torch.no_grad():
            return model(*images).logits

    def fake(attentions, residual=False):
        B, N, _ = attentions[0].shape
        g = torch.Generator().manual_seed(N)  # the same g for a scale in every variant
        return torch.empty(B, N).uniform_(0.05, 1.0, generator=g)

    with mock.patch("msmmt.model.backbone.patch_weights", fake), torch.no_grad():
        return model(*images).logits


def sensitivity_rows(name: str, model, images, modes: list[str]) -> list[dict]:
    rows = []
    for mode in modes:
        base = logits(model, images, "none", mode == "random_g")
        for variant in VARIANTS[1:]:
            got = logits(model, images, variant, mode == "random_g")
            rows.append({"model": name, "g": mode, "variant": variant,
                         "max_abs_dlogit": (got - base).abs().max().item(),
                         "logit_std": base.std().item(), "g_min": None, "g_mean": None})
    return rows


def random_model(config: str):
    cfg = load_config(config).model.model_copy(update={"pretrained": None})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(1)
    batch = BATCH.get(config, 4)
    images = [torch.rand(batch, 3, cfg.img_size, cfg.img_size, generator=g) for _ in range(2)]
    return model, images


def trained_rows(folders: list[Path], data: Path) -> list[dict]:
    from bench_faithfulness import load_images

    from msmmt.model.checkpoint import load_checkpoint

    rows = []
    for folder in folders:
        model, cfg, _ = load_checkpoint(folder)
        images, _ = load_images(data, cfg)
        pair = [images["texture"], images["motion"]]
        with torch.no_grad():
            maps = [w.flatten(1) for w in model(*pair).patch_weights.values()]
        own = logits(model, pair, cfg.model.patch_weighting, False)
        base = logits(model, pair, "none", False)
        rows.append({"model": f"trained {folder.name}", "g": "own_g",
                     "variant": cfg.model.patch_weighting,
                     "max_abs_dlogit": (own - base).abs().max().item(),
                     "logit_std": own.std().item(),
                     "g_min": torch.stack([m.min(1).values for m in maps]).mean().item(),
                     "g_mean": torch.stack([m.mean(1) for m in maps]).mean().item()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["cpu-small", "paper"])
    parser.add_argument("--models", nargs="*", type=Path, default=[])
    parser.add_argument("--data", type=Path, help="preprocessed clips for --models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for config in args.configs:
        model, images = random_model(config)
        rows += sensitivity_rows(f"{config} (random init)", model, images, ["own_g", "random_g"])
    if args.models:
        rows += trained_rows(args.models, args.data)
    record("patch_weighting", rows)


if __name__ == "__main__":
    main()
