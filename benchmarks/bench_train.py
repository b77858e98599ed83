"""Speed of the training loop's data side and of one training epoch.

On a stand-in for the public composite release (442 clips of 68 subjects: 224 x 224
texture images and 28 x 28 flow images, random pixels), it times

* building the in-memory dataset: the first fold decodes every image, later folds of
  a LOSO run reuse the process-wide cache (``cold`` vs ``warm``);
* one pass over the data loader without a model, with and without the paired
  augmentation (its cost per clip);
* one training epoch of :func:`msmmt.engine.trainer.fit` per config, and from it
  the training time of a whole LOSO run (68 folds x train.epochs epochs).

    .venv/bin/python benchmarks/bench_train.py
    .venv/bin/python benchmarks/bench_train.py --configs demo cpu-small --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, timeit  # noqa: E402

from msmmt.config import load_config  # noqa: E402
from msmmt.core.records import Sample  # noqa: E402
from msmmt.engine import dataset as dataset_module  # noqa: E402
from msmmt.engine.dataset import ModalityDataset  # noqa: E402
from msmmt.engine.trainer import fit  # noqa: E402

CLASSES = ("negative", "positive", "surprise")
SUBJECTS, CLIPS = 68, 442


def composite_like(folder: Path) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(CLIPS):
        tex, mot = folder / f"{i}_apex.png", folder / f"{i}_flow.png"
        cv2.imwrite(str(tex), rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
        cv2.imwrite(str(mot), rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
        label = CLASSES[i % 3]
        samples.append(
            Sample(
                "release", f"s{i % SUBJECTS}", str(i), label, texture_image=tex, motion_image=mot
            )
        )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["demo", "cpu-small"])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        samples = composite_like(Path(tmp))
        for config in args.configs:
            cfg = load_config(config, ["device=cpu"])
            size = cfg.model.img_size
            dataset_module._decode.cache_clear()
            t0 = time.perf_counter()
            ModalityDataset(samples, CLASSES, size)
            cold = time.perf_counter() - t0
            warm = timeit(lambda s=size: ModalityDataset(samples, CLASSES, s), repeat=3)
            rows.append(
                dict(
                    config=config,
                    what="dataset build, cold (decode)",
                    seconds=cold,
                    per_clip_ms=1e3 * cold / CLIPS,
                )
            )
            rows.append(
                dict(
                    config=config,
                    what="dataset build, warm (cached)",
                    seconds=warm,
                    per_clip_ms=1e3 * warm / CLIPS,
                )
            )
            for aug in (None, cfg.train.augment):
                ds = ModalityDataset(samples, CLASSES, size, aug)
                loader = DataLoader(ds, batch_size=cfg.train.batch_size)
                sec = timeit(lambda loader=loader: [b for b in loader], repeat=3)
                what = "loader epoch, " + ("augmented" if aug else "no augmentation")
                rows.append(
                    dict(config=config, what=what, seconds=sec, per_clip_ms=1e3 * sec / CLIPS)
                )
            one = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
            t0 = time.perf_counter()
            fit(one, samples, progress=False)
            epoch = time.perf_counter() - t0
            rows.append(
                dict(
                    config=config,
                    what="fit, one epoch",
                    seconds=epoch,
                    per_clip_ms=1e3 * epoch / CLIPS,
                )
            )
            loso = epoch * SUBJECTS * cfg.train.epochs * (CLIPS - CLIPS / SUBJECTS) / CLIPS
            rows.append(
                dict(
                    config=config,
                    what=f"LOSO estimate ({cfg.train.epochs} epochs x 68 folds)",
                    seconds=loso,
                    per_clip_ms=None,
                )
            )
    record("train", rows)


if __name__ == "__main__":
    main()
