"""Reference models fitted on one fold's training clips, run in MSMMT's place by the fold
runner under the same folds, leakage guard and report (``docs/METHOD.md``, "Baselines").

``cfg.baseline.kind`` selects one:

- ``svm``: an RBF support vector machine on the motion image's pixels (u, v, strain,
  resized to ``image_size``, flattened; ``28 * 28 * 3 = 1176`` features), standardised with
  the training fold's mean and standard deviation; ``C``, ``gamma`` and ``class_weight``
  from the config, nothing tuned. Its scores are the softmax of the one-vs-rest decision
  values (``break_ties=True``, so their argmax is the SVM's prediction); they are not
  calibrated probabilities.
- ``logreg``: multinomial logistic regression on the same standardised features; its
  scores are its probabilities.
- ``ststnet``: :class:`msmmt.model.ststnet.STSTNet` trained from scratch with Adam
  (``lr``, ``batch_size``, ``epochs`` fixed: the last epoch is tested, nothing is chosen
  on any subject), cross-entropy, images in [0, 1].

Every statistic (scaler, weights) comes from the training clips; the test clips are only
transformed and scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from msmmt.config import BaselineConfig, Config
from msmmt.core.labels import class_names, label_indices
from msmmt.core.records import DatasetError, Sample
from msmmt.engine.dataset import load_image
from msmmt.model.ststnet import STSTNet

__all__ = [
    "BaselineResult",
    "fit_baseline",
    "fit_pixels",
    "fit_ststnet",
    "motion_pixels",
    "pixel_classifier",
]


@dataclass
class BaselineResult:
    """One fold's outcome: the fields of the runner's ``FoldOutput``."""

    probabilities: np.ndarray
    """(N_test, C) class scores, rows in the order of the test samples."""
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def motion_pixels(samples: Sequence[Sample], size: int) -> np.ndarray:
    """``(N, size, size, 3)`` float32 motion images in [0, 1] (resized as for the model)."""
    missing = [s for s in samples if s.motion_image is None]
    if missing:
        raise DatasetError(
            f"{missing[0].key}: no motion image ({len(missing)} such samples); preprocess the "
            "clips first (msmmt preprocess) and run on the cache's manifest"
        )
    images = [load_image(s.motion_image, size) for s in samples]
    return np.stack(images).astype(np.float32) / 255.0


def pixel_classifier(cfg: BaselineConfig, seed: int):
    """The scikit-learn pipeline ``StandardScaler -> SVC | LogisticRegression`` of ``cfg``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if cfg.kind == "svm":
        clf = SVC(C=cfg.C, kernel="rbf", gamma=cfg.gamma, class_weight=cfg.class_weight,
                  decision_function_shape="ovr", break_ties=True, random_state=seed)
    elif cfg.kind == "logreg":
        clf = LogisticRegression(C=cfg.C, class_weight=cfg.class_weight, max_iter=cfg.max_iter,
                                 random_state=seed)
    else:
        raise ValueError(f"baseline.kind {cfg.kind!r} is not a pixel classifier")
    return make_pipeline(StandardScaler(), clf)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_pixels(cfg: Config, x_train, y_train, x_test, n_classes: int) -> BaselineResult:
    """Fit the pixel classifier; scores scattered into all ``n_classes`` columns (a class
    absent from the training fold scores 0 / -inf)."""
    pipeline = pixel_classifier(cfg.baseline, cfg.seed)
    flat_train = x_train.reshape(len(x_train), -1)
    pipeline.fit(flat_train, y_train)
    flat = x_test.reshape(len(x_test), -1)
    seen = pipeline[-1].classes_
    out = np.zeros((len(x_test), n_classes))
    if cfg.baseline.kind == "svm":
        dec = pipeline.decision_function(flat)
        if len(seen) == 2:  # binary SVC: one column, positive for seen[1]
            dec = np.stack([-dec, dec], axis=1)
        out[:, seen] = _softmax(dec)
    else:
        out[:, seen] = pipeline.predict_proba(flat)
    info = {"train_acc": float(pipeline.score(flat_train, y_train))}
    return BaselineResult(out, [], info)


def fit_ststnet(
    cfg: BaselineConfig, x_train: np.ndarray, y_train: np.ndarray, n_classes: int, seed: int,
    device: torch.device | str = "cpu",
) -> tuple[STSTNet, list[dict[str, Any]]]:
    """Train STSTNet on ``(N, S, S, 3)`` images for ``cfg.epochs`` epochs (minibatches of
    ``cfg.batch_size``, reshuffled each epoch with ``seed``); return the last epoch's model
    (eval mode) and one history row per epoch (epoch, train_loss, train_acc)."""
    torch.manual_seed(seed)
    model = STSTNet(n_classes, x_train.shape[1]).to(device)
    x = torch.from_numpy(np.ascontiguousarray(x_train.transpose(0, 3, 1, 2))).to(device)
    y = torch.from_numpy(y_train).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        total, correct = 0.0, 0
        for idx in torch.randperm(len(y), generator=generator).split(cfg.batch_size):
            idx = idx.to(device)
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        history.append({"epoch": epoch, "train_loss": total / len(y), "train_acc": correct / len(y)})
    return model.eval(), history


def _fit_ststnet_fold(cfg: Config, x_train, y_train, x_test, n_classes: int) -> BaselineResult:
    from msmmt.engine.trainer import select_device

    device = select_device(cfg.device)
    model, history = fit_ststnet(cfg.baseline, x_train, y_train, n_classes, cfg.seed, device)
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2))).to(device)
        probs = torch.softmax(model(xt), dim=1).cpu().numpy()
    return BaselineResult(probs, history, {"train_acc": history[-1]["train_acc"]})


def fit_baseline(cfg: Config, train: list[Sample], test: list[Sample]) -> BaselineResult:
    """Fit ``cfg.baseline.kind`` on ``train`` and score ``test`` (module doc)."""
    classes = class_names(cfg.data.class_set)
    size = cfg.baseline.image_size
    x_train, x_test = motion_pixels(train, size), motion_pixels(test, size)
    y_train = label_indices([s.label for s in train], classes, [s.key for s in train])
    if cfg.baseline.kind == "ststnet":
        return _fit_ststnet_fold(cfg, x_train, y_train, x_test, len(classes))
    return fit_pixels(cfg, x_train, y_train, x_test, len(classes))
