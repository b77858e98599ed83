"""Training one MSMMT model (paper, section 4.4) and predicting with it.

:func:`fit` minimises L = (1 - alpha) L_con + alpha L_ce (DESIGN.md eq 21) with AdamW,
an optional linear warm-up and cosine decay (per step), gradient clipping and mixed
precision on CUDA. Given a validation set (other *training* subjects, chosen by the
caller; never the test subject) it stops early on the validation UF1 and restores the
weights of the best epoch. :func:`predict_proba` gives class probabilities in eval
mode, without augmentation.

Labels are the names of ``class_names(cfg.data.class_set)``; map the datasets'
emotions onto them first (``msmmt.data.readers.filter_class_set``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from msmmt.config import Config, ConfigError
from msmmt.core.io import atomic_write_text
from msmmt.core.labels import class_names
from msmmt.core.records import Sample
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.metrics import scores
from msmmt.model import build_model
from msmmt.model.losses import msmmt_loss

__all__ = [
    "FitResult",
    "class_weights",
    "fit",
    "lr_factor",
    "predict_proba",
    "select_device",
    "train_sampler",
]

log = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_ce",
    "train_con",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_uf1",
)


@dataclass
class FitResult:
    model: nn.Module
    """The trained model (best epoch's weights when a validation set was given), eval mode."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per epoch, keys from :data:`HISTORY_COLUMNS` (val_* only with a validation set)."""
    best_epoch: int = 0
    """1-based epoch whose weights the model holds (the last one without validation)."""


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was requested but no CUDA device is available")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while training, previous settings restored afterwards.

    CUDA ops without a deterministic implementation (e.g. the backward of the
    position-embedding interpolation) only warn, so runs on a GPU are reproducible
    up to those ops; on the CPU they are exact.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


def _autocast(device: torch.device, enabled: bool):
    """(autocast context factory, GradScaler or None): bf16 where supported, else fp16 + scaler."""
    if device.type != "cuda" or not enabled:
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up (step + 1) / warmup over the first ``warmup`` steps, then constant or
    cosine 0.5 (1 + cos(pi (step - warmup) / (total - warmup))).
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency of the training labels, w_c = N / (C n_c) (1 for absent classes)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes)
    present = counts > 0
    weights[present] = len(labels) / (n_classes * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def train_sampler(labels: np.ndarray, balanced: bool, seed: int):
    """Shuffled epochs of the training set; ``balanced`` draws N clips with replacement,
    each with probability proportional to 1 / n_c of its class c, so every class is
    drawn equally often on average."""
    generator = torch.Generator().manual_seed(seed)
    if not balanced:
        return RandomSampler(range(len(labels)), generator=generator)
    counts = np.bincount(labels)
    return WeightedRandomSampler(
        (1.0 / counts[labels]).tolist(), len(labels), replacement=True, generator=generator
    )


def _float_output(output):
    """The model's output with floating tensors in float32 (loss outside autocast)."""
    if not is_dataclass(output):
        return output
    changes = {}
    for f in fields(output):
        value = getattr(output, f.name)
        if torch.is_tensor(value) and value.is_floating_point():
            changes[f.name] = value.float()
    return replace(output, **changes)


def _loader(dataset, batch_size: int, cfg: Config, sampler=None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=cfg.train.num_workers,
        pin_memory=False,
    )


def _check_classes(cfg: Config) -> tuple[str, ...]:
    names = class_names(cfg.data.class_set)
    if cfg.model.num_classes != len(names):
        raise ConfigError(
            f"model.num_classes: {cfg.model.num_classes}, but data.class_set "
            f"{cfg.data.class_set!r} has {len(names)} classes {list(names)}"
        )
    return names


@torch.no_grad()
def _evaluate(model, loader, device, autocast, loss_fn=None) -> tuple[np.ndarray, float]:
    """Class probabilities (N, C) in eval mode and, with ``loss_fn``, the mean loss."""
    model.eval()
    probs, total, n = [], 0.0, 0
    for texture, motion, labels in loader:
        texture, motion = texture.to(device), motion.to(device)
        with autocast():
            output = model(texture, motion)
        output = _float_output(output)
        probs.append(torch.softmax(output.logits, dim=1).double().cpu())
        if loss_fn is not None:
            loss, _ = loss_fn(output, labels.to(device))
            total += float(loss) * len(labels)
            n += len(labels)
    proba = torch.cat(probs).numpy() if probs else np.zeros((0, 0))
    return proba, (total / n if n else float("nan"))


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    columns = [c for c in HISTORY_COLUMNS if history and c in history[0]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def fit(
    cfg: Config,
    train: Sequence[Sample],
    val: Sequence[Sample] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train a model on ``train`` (samples with texture_image / motion_image).

    With ``val`` (other training subjects, never the test subject) the validation
    loss, accuracy and UF1 are logged each epoch; training stops after
    ``cfg.eval.patience`` epochs without a better UF1 (ties broken by lower loss)
    and the best epoch's weights are restored. Without it, ``cfg.train.epochs``
    epochs are run and the last weights kept. ``out_dir`` receives history.csv.
    """
    names = _check_classes(cfg)
    if not train:
        raise ValueError("fit: the training set is empty")
    val = list(val) if val else None
    if val:
        overlap = {s.key for s in train} & {s.key for s in val}
        if overlap:
            raise ValueError(
                f"fit: clips in both training and validation sets: {sorted(overlap)[:5]}"
            )
    device = select_device(cfg.device)
    tc = cfg.train
    with _deterministic(tc.deterministic):
        _seed_everything(cfg.seed)
        train_ds = ModalityDataset(train, names, cfg.model.img_size, tc.augment, seed=cfg.seed)
        val_ds = ModalityDataset(val, names, cfg.model.img_size) if val else None
        sampler = train_sampler(train_ds.labels, tc.balanced_sampling, cfg.seed)
        train_loader = _loader(train_ds, tc.batch_size, cfg, sampler)
        val_loader = _loader(val_ds, tc.batch_size, cfg) if val_ds else None

        model = build_model(cfg.model).to(device)
        weights = (
            class_weights(train_ds.labels, len(names)).to(device)
            if cfg.loss.class_weights
            else None
        )

        def loss_fn(output, labels):
            return msmmt_loss(output, labels, cfg.loss, weights)

        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": tc.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=tc.lr,
        )
        steps = tc.epochs * len(train_loader)
        warmup = tc.warmup_epochs * len(train_loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, steps, warmup, tc.schedule)
        )
        autocast, scaler = _autocast(device, tc.amp)

        history: list[dict[str, float]] = []
        best = (-math.inf, -math.inf)
        best_epoch, best_state, stale = tc.epochs, None, 0
        bar = tqdm(range(1, tc.epochs + 1), desc="train", unit="epoch", disable=not progress)
        for epoch in bar:
            train_ds.set_epoch(epoch)
            model.train()
            row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            sums = {"loss": 0.0, "ce": 0.0, "con": 0.0, "correct": 0.0}
            for texture, motion, labels in train_loader:
                texture, motion, labels = texture.to(device), motion.to(device), labels.to(device)
                with autocast():
                    output = model(texture, motion)
                output = _float_output(output)
                loss, parts = loss_fn(output, labels)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if tc.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                b = len(labels)
                sums["loss"] += float(loss.detach()) * b
                sums["ce"] += float(parts["ce"]) * b
                sums["con"] += float(parts["con"]) * b
                sums["correct"] += float((output.logits.argmax(1) == labels).sum())
            n = len(train_ds)
            row.update(
                train_loss=sums["loss"] / n,
                train_ce=sums["ce"] / n,
                train_con=sums["con"] / n,
                train_acc=sums["correct"] / n,
            )
            if val_loader is not None:
                proba, val_loss = _evaluate(model, val_loader, device, autocast, loss_fn)
                s = scores(val_ds.labels, proba.argmax(1), len(names))
                row.update(val_loss=val_loss, val_acc=s["acc"], val_uf1=s["uf1"])
                if (s["uf1"], -val_loss) > best:
                    best, best_epoch, stale = (s["uf1"], -val_loss), epoch, 0
                    best_state = {
                        k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                    }
                else:
                    stale += 1
            history.append(row)
            if out_dir is not None:
                _write_history(Path(out_dir) / "history.csv", history)
            bar.set_postfix(
                {k: f"{row[k]:.3f}" for k in ("train_loss", "train_acc", "val_uf1") if k in row}
            )
            log.debug("epoch %d: %s", epoch, row)
            if val_loader is not None and stale >= cfg.eval.patience:
                log.info("early stop after epoch %d; best epoch %d", epoch, best_epoch)
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        model.eval()
    return FitResult(model=model, history=history, best_epoch=best_epoch)


def predict_proba(
    model: nn.Module, samples: Sequence[Sample], cfg: Config, batch_size: int | None = None
) -> np.ndarray:
    """Class probabilities (N, C) of ``samples`` (eval mode, no augmentation; labels unused)."""
    n_classes = cfg.model.num_classes
    if not samples:
        return np.zeros((0, n_classes))
    device = next(model.parameters()).device
    dataset = ModalityDataset(samples, None, cfg.model.img_size)
    loader = _loader(dataset, batch_size or max(cfg.train.batch_size, 32), cfg)
    autocast, _ = _autocast(device, cfg.train.amp)
    proba, _ = _evaluate(model, loader, device, autocast)
    return proba
