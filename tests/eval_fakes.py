"""Test doubles for the evaluation runner: labelled samples with a 1-D feature and a
nearest-class-mean classifier standing in for the model (the runner is model-agnostic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msmmt.config import Config
from msmmt.data.records import Sample
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


def centroid_fit_predict(cfg: Config, train: list[Sample], test: list[Sample], fold_dir: Path):
    """Nearest class mean of ``extra["x"]`` over the training samples; softmax(-distance)."""
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
    return FoldOutput(p, history, {"best_epoch": 3})
