"""Test doubles for the evaluation runner: labelled samples with a 1-D feature and a
nearest-class-mean classifier standing in for the model (the runner is model-agnostic)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from msmmt.config import Config
from msmmt.core.records import Sample
from msmmt.evaluation.runner import FoldOutput

CLASSES = ("negative", "positive", "surprise")  # the composite class set


def make_samples(
    n_subjects: int = 6,
    clips: tuple[int, ...] = (2, 3, 4),
    datasets: tuple[str, ...] = ("casme2", "smic"),
    seed: int = 0,
    noise: float = 0.7,
) -> list[Sample]:
    """Samples whose ``extra["x"]`` is the class index plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_subjects):
        ds = datasets[i % len(datasets)]
        for j in range(clips[i % len(clips)]):
            c = int(rng.integers(0, len(CLASSES)))
            x = c + float(rng.normal(0.0, noise))
            out.append(Sample(ds, f"{ds}/s{i:02d}", f"clip{j}", CLASSES[c], extra={"x": x}))
    return out


def centroid_fit_predict(
    cfg: Config, train: list[Sample], test: list[Sample], fold_dir: Path, on_epoch=None
):
    """Nearest class mean of ``extra["x"]`` over the training samples; softmax(-distance).
    A made-up three-epoch history, handed row by row to ``on_epoch`` when given."""
    assert not {s.subject for s in train} & {s.subject for s in test}, "test subject in training"
    x = np.array([s.extra["x"] for s in train])
    y = np.array([CLASSES.index(s.label) for s in train])
    means = np.array([x[y == c].mean() if (y == c).any() else 1e6 for c in range(len(CLASSES))])
    xt = np.array([s.extra["x"] for s in test])
    logits = -np.abs(xt[:, None] - means[None, :])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    history = [
        {"epoch": e, "train_loss": 1.0 / (e + 1) + 0.01 * len(train), "val_loss": 2.0 / (e + 1)}
        for e in range(1, 4)
    ]
    for row in history if on_epoch is not None else ():
        on_epoch(row)
    return FoldOutput(p, history, {"best_epoch": 3})


def write_manifest_dataset(root: Path, subjects: dict[str, int], size: int = 32) -> Path:
    """Tiny PNG image pairs and a precomputed manifest.csv: ``subjects`` maps
    ``dataset/subject`` -> clips; labels cycle through the composite classes."""
    import cv2

    rng = np.random.default_rng(0)
    rows = ["dataset,subject,sample,label,texture_image,flow_image"]
    n = 0
    for subject, clips in subjects.items():
        dataset = subject.split("/")[0]
        for j in range(clips):
            label = CLASSES[n % len(CLASSES)]
            for kind in ("tex", "flow"):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                img[:, :, n % 3] = 255  # a class-free but visible pattern
                cv2.imwrite(str(root / f"{kind}_{n}.png"), img)
            rows.append(f"{dataset},{subject},clip{j},{label},tex_{n}.png,flow_{n}.png")
            n += 1
    path = root / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def hashed_fit_predict(cfg: Config, train: list[Sample], test: list[Sample], fold_dir: Path):
    """A seeded random classifier: each test clip's probabilities depend only on its key."""
    import zlib

    p = np.stack(
        [np.random.default_rng(zlib.crc32(s.key.encode())).dirichlet(np.ones(len(CLASSES))) for s in test]
    )
    return FoldOutput(p, [{"epoch": 1, "train_loss": 1.0}])


TINY_MODEL = {
    "device": "cpu",
    "model": {
        "backbone": "vit_tiny_patch16_224", "img_size": 16, "patch_size": 4, "embed_dim": 16,
        "depth": 2, "scales": [1, 2], "num_heads": 2, "fusion_hidden": 16, "proj_dim": 8,
        "num_classes": 3,
    },
    "train": {"epochs": 2, "batch_size": 4, "lr": 1.0e-3, "amp": False},
}
"""A model small enough to train a few LOSO folds in about a second on one CPU thread."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread: a model this tiny runs far faster without intra-op sync on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
