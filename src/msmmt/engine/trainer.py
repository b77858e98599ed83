"""Training one MSMMT model (paper, section 4.4) and predicting with it.

:func:`fit` minimises L = (1 - alpha) L_con + alpha L_ce (``docs/METHOD.md``, "Training
objective") with AdamW, an optional linear warm-up and cosine decay (per step;
:mod:`msmmt.engine.optim`), gradient clipping and mixed precision on CUDA
(:mod:`msmmt.engine.runtime`). Given a
validation set (other *training* subjects, chosen by the caller; never the test subject)
it stops early on the validation UF1 and restores the weights of the best epoch
(:class:`~msmmt.engine.early_stopping.EarlyStopping`). :func:`predict_proba` gives class
probabilities in eval mode, without augmentation. With ``model.pixel_blend`` the pixel head
is fitted on the training clips once the ViT is trained (:mod:`msmmt.engine.pixel_head`), and
probabilities are the blend :meth:`~msmmt.model.msmmt.MSMMTOutput.probabilities`;
:func:`predict_parts` gives the ViT's and the head's apart.

The pieces: :func:`train_one_epoch` (one pass of optimiser steps), :func:`evaluate`
(probabilities and loss in eval mode), :class:`~msmmt.engine.history.HistoryWriter`
(``history.csv``), :func:`~msmmt.engine.runtime.seed_everything` and
:func:`~msmmt.engine.runtime.deterministic` (reproducibility).

Labels are the names of ``class_names(cfg.data.class_set)``; map the datasets'
emotions onto them first (``msmmt.data.readers.filter_class_set``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from msmmt.config import AugmentConfig, Config
from msmmt.core.labels import class_names
from msmmt.core.records import Sample
from msmmt.engine.augment import mix_batch
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.early_stopping import EarlyStopping
from msmmt.engine.history import HistoryWriter
from msmmt.engine.metrics import scores
from msmmt.engine.optim import build_optimizer, build_scheduler
from msmmt.engine.pixel_head import fit_pixel_head
from msmmt.engine.pretrain import pretrain_backbones
from msmmt.engine.runtime import Precision, deterministic, seed_everything, select_device
from msmmt.model import SeedEnsemble, build_model
from msmmt.model.ensemble import member_config, member_seed
from msmmt.model.losses import msmmt_loss

__all__ = [
    "FitResult",
    "class_weights",
    "evaluate",
    "fit",
    "predict_parts",
    "predict_proba",
    "train_one_epoch",
    "train_sampler",
]

log = logging.getLogger(__name__)

LossFn = Callable[[object, torch.Tensor], tuple[torch.Tensor, dict]]


@dataclass
class FitResult:
    model: nn.Module
    """The trained model (best epoch's weights when a validation set was given), eval mode."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per epoch, keys from :data:`msmmt.engine.history.HISTORY_COLUMNS`
    (val_* only with a validation set)."""
    best_epoch: int = 0
    """1-based epoch whose weights the model holds (the last one without validation); the
    first member's for a seed ensemble (``info`` has every member's)."""
    info: dict[str, float] = field(default_factory=dict)
    """Other facts of the fit (``pixel_train_acc``: the pixel head's training accuracy)."""


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


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    precision: Precision,
    grad_clip: float | None = None,
    mixing: tuple[AugmentConfig, np.random.Generator] | None = None,
    ema: ModelEmaV3 | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` in train mode, an optimiser and a scheduler step per batch.

    ``mixing`` (the augmentation settings and a generator) mixes each batch with
    :func:`~msmmt.engine.augment.mix_batch` and takes ``lam L(y) + (1 - lam) L(y[perm])``;
    ``ema`` is updated after every step. Returns the means over the clips drawn:
    ``train_loss``, ``train_ce``, ``train_con`` (the loss and its two terms) and
    ``train_acc`` (against the unmixed labels).
    """
    device = next(model.parameters()).device
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "con": 0.0, "correct": 0.0}
    n = 0
    for texture, motion, labels in loader:
        texture, motion, labels = texture.to(device), motion.to(device), labels.to(device)
        perm, lam = None, 1.0
        if mixing is not None:
            texture, motion, perm, lam = mix_batch(texture, motion, *mixing)
        with precision.autocast():
            output = model(texture, motion)
        output = _float_output(output)
        loss, parts = _mixed_loss(loss_fn, output, labels, perm, lam)
        precision.step(loss, optimizer, model.parameters(), grad_clip)
        scheduler.step()
        if ema is not None:
            ema.update(model, step=scheduler.last_epoch)
        b = len(labels)
        n += b
        sums["loss"] += float(loss.detach()) * b
        sums["ce"] += float(parts["ce"]) * b
        sums["con"] += float(parts["con"]) * b
        sums["correct"] += float((output.logits.argmax(1) == labels).sum())
    return {
        "train_loss": sums["loss"] / n,
        "train_ce": sums["ce"] / n,
        "train_con": sums["con"] / n,
        "train_acc": sums["correct"] / n,
    }


def _mixed_loss(loss_fn: LossFn, output, labels, perm, lam: float):
    """``lam L(y) + (1 - lam) L(y[perm])``, parts alike (just ``L(y)`` when ``lam == 1``)."""
    loss, parts = loss_fn(output, labels)
    if perm is None or lam >= 1.0:
        return loss, parts
    loss_b, parts_b = loss_fn(output, labels[perm.to(labels.device)])
    return lam * loss + (1 - lam) * loss_b, {k: lam * parts[k] + (1 - lam) * parts_b[k] for k in parts}


def _eval_outputs(model: nn.Module, loader: DataLoader, precision: Precision):
    """``(output, labels)`` per batch of ``loader``, in eval mode, outputs in float32."""
    device = next(model.parameters()).device
    model.eval()
    for texture, motion, labels in loader:
        with torch.no_grad(), precision.autocast():
            output = model(texture.to(device), motion.to(device))
        yield _float_output(output), labels


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, precision: Precision, loss_fn: LossFn | None = None
) -> tuple[np.ndarray, float]:
    """Class probabilities (N, C) in eval mode and, with ``loss_fn``, the mean loss (else NaN)."""
    device = next(model.parameters()).device
    probs, total, n = [], 0.0, 0
    for output, labels in _eval_outputs(model, loader, precision):
        probs.append(output.probabilities().double().cpu())
        if loss_fn is not None:
            loss, _ = loss_fn(output, labels.to(device))
            total += float(loss) * len(labels)
            n += len(labels)
    proba = torch.cat(probs).numpy() if probs else np.zeros((0, 0))
    return proba, (total / n if n else float("nan"))


def _check_sets(train: Sequence[Sample], val: Sequence[Sample] | None) -> None:
    if not train:
        raise ValueError("fit: the training set is empty")
    overlap = {s.key for s in train} & {s.key for s in val or ()}
    if overlap:
        raise ValueError(f"fit: clips in both training and validation sets: {sorted(overlap)[:5]}")


def _validation_row(model, loader, labels, precision, loss_fn, n_classes) -> dict[str, float]:
    proba, val_loss = evaluate(model, loader, precision, loss_fn)
    s = scores(labels, proba.argmax(1), n_classes)
    return {"val_loss": val_loss, "val_acc": s["acc"], "val_uf1": s["uf1"]}


def _data(cfg: Config, names: Sequence[str], train: Sequence[Sample], val):
    """Training set (augmented) and loader (shuffled, or class-balanced draws), and the
    validation set and loader (None, None without ``val``)."""
    tc = cfg.train
    train_ds = ModalityDataset(train, names, cfg.model.img_size, tc.augment, seed=cfg.seed)
    sampler = train_sampler(train_ds.labels, tc.balanced_sampling, cfg.seed)
    if not val:
        return train_ds, _loader(train_ds, tc.batch_size, cfg, sampler), None, None
    val_ds = ModalityDataset(val, names, cfg.model.img_size)
    return (
        train_ds,
        _loader(train_ds, tc.batch_size, cfg, sampler),
        val_ds,
        _loader(val_ds, tc.batch_size, cfg),
    )


def _loss_fn(cfg: Config, labels: np.ndarray, n_classes: int, device) -> LossFn:
    """Eq 21 with the training set's class weights when ``cfg.loss.class_weights``."""
    weights = class_weights(labels, n_classes).to(device) if cfg.loss.class_weights else None

    def loss_fn(output, y):
        return msmmt_loss(output, y, cfg.loss, weights)

    return loss_fn


def fit(
    cfg: Config,
    train: Sequence[Sample],
    val: Sequence[Sample] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train a model on ``train`` (samples with texture_image / motion_image).

    With ``val`` (other training subjects, never the test subject) the validation
    loss, accuracy and UF1 are logged each epoch; training stops after
    ``cfg.train.patience`` epochs without a better UF1 (ties broken by lower loss)
    and the best epoch's weights are restored. Without it, ``cfg.train.epochs``
    epochs are run and the last weights kept. With ``cfg.train.ema_decay`` the moving
    average of the weights is what is validated, restored and returned. Batches are
    mixed when ``cfg.train.augment`` asks for mixup / CutMix. With ``model.members = K > 1``
    the K members of a :class:`~msmmt.model.ensemble.SeedEnsemble` are trained this way one
    after the other, member k with seed ``seed + 1000 k`` (member 0 is the single network of
    ``seed``), and their history rows carry their ``member`` (1..K). The pixel head, if any,
    is fitted last. With ``cfg.train.pretrain.epochs`` each network's backbones are first
    pretrained, label-free, on ``train`` (:mod:`msmmt.engine.pretrain`; ``info`` gets the
    reconstruction losses). ``out_dir`` receives history.csv; ``on_epoch`` receives each epoch's
    history row as soon as it is done.
    """
    _check_sets(train, val)
    history = HistoryWriter(out_dir, on_epoch)
    if cfg.model.members > 1:
        model = SeedEnsemble(cfg.model)
        best_epochs, info = [], {}
        for k, member in enumerate(model.members):
            member_cfg = cfg.model_copy(
                update={"seed": member_seed(cfg.seed, k), "model": member_config(cfg.model)}
            )
            trained, best, facts = _train_network(member_cfg, train, val, history, progress, k + 1)
            member.load_state_dict(trained.state_dict())
            best_epochs.append(best)
            info |= {f"{name}_member{k + 1}": value for name, value in facts.items()}
        model = model.to(select_device(cfg.device)).eval()
        info |= {f"best_epoch_member{k + 1}": b for k, b in enumerate(best_epochs)}
    else:
        model, best, info = _train_network(cfg, train, val, history, progress, None)
        best_epochs = [best]
    if cfg.model.pixel_blend > 0:
        info |= fit_pixel_head(model, train, cfg)
    return FitResult(model, history.rows, best_epochs[0], info)


def _train_network(
    cfg: Config,
    train: Sequence[Sample],
    val: Sequence[Sample] | None,
    history: HistoryWriter,
    progress: bool,
    member: int | None,
) -> tuple[nn.Module, int, dict[str, float]]:
    """Train the network ``build_model(cfg.model)`` with ``cfg.seed`` as :func:`fit` says,
    after pretraining its backbones on the training clips when ``cfg.train.pretrain.epochs``
    (:func:`~msmmt.engine.pretrain.pretrain_backbones`); append its epochs to ``history``
    (with ``member`` when given). Returns the model in eval mode, the 1-based epoch whose
    weights it holds and the pretraining's losses (empty without it)."""
    names, tc = class_names(cfg.data.class_set), cfg.train
    with deterministic(tc.deterministic):
        seed_everything(cfg.seed)
        train_ds, train_loader, val_ds, val_loader = _data(cfg, names, train, val)
        device = select_device(cfg.device)
        model = build_model(cfg.model).to(device)
        info = pretrain_backbones(model, train_ds, cfg, progress).info if tc.pretrain.epochs else {}
        loss_fn = _loss_fn(cfg, train_ds.labels, len(names), device)
        optimizer = build_optimizer(model, tc)
        scheduler = build_scheduler(optimizer, tc, len(train_loader))
        precision = Precision.for_device(device, tc.amp)
        ema = ModelEmaV3(model, decay=tc.ema_decay, use_warmup=True) if tc.ema_decay else None
        tested = model if ema is None else ema.module  # the weights validated and returned
        mixing = None
        if tc.augment.mixup > 0 or tc.augment.cutmix > 0:
            mixing = (tc.augment, np.random.default_rng(cfg.seed))
        stopper = EarlyStopping(tc.patience) if val_ds else None
        desc = "train" if member is None else f"train member {member}"
        bar = tqdm(range(1, tc.epochs + 1), desc=desc, unit="epoch", disable=not progress)
        ran = 0
        for epoch in bar:
            train_ds.set_epoch(epoch)
            row = {} if member is None else {"member": member}
            row |= {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            row |= train_one_epoch(
                model, train_loader, loss_fn, optimizer, scheduler, precision, tc.grad_clip,
                mixing, ema,
            )
            if stopper is not None:
                row |= _validation_row(
                    tested, val_loader, val_ds.labels, precision, loss_fn, len(names)
                )
                stopper.update(epoch, (row["val_uf1"], -row["val_loss"]), tested)
            history.append(row)
            ran = epoch
            bar.set_postfix(
                {k: f"{row[k]:.3f}" for k in ("train_loss", "train_acc", "val_uf1") if k in row}
            )
            log.debug("epoch %d: %s", epoch, row)
            if stopper is not None and stopper.should_stop:
                log.info("early stop after epoch %d; best epoch %d", epoch, stopper.best_epoch)
                break
        bar.close()
        best = stopper.restore(tested) if stopper is not None else None
        tested.eval()
    return tested, best or ran, info


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
    proba, _ = evaluate(model, loader, Precision.for_device(device, cfg.train.amp))
    return proba


def predict_parts(
    model: nn.Module, samples: Sequence[Sample], cfg: Config
) -> dict[str, np.ndarray]:
    """The ViT's and the pixel head's probabilities apart, ``{"vit": (N, C), "pixel": (N, C)}``;
    ``{}`` for a model without a fitted pixel head (its probabilities are the ViT's)."""
    head = getattr(model, "pixel_head", None)
    if not samples or head is None or not head.is_fitted:
        return {}
    device = next(model.parameters()).device
    loader = _loader(ModalityDataset(samples, None, cfg.model.img_size), 64, cfg)
    parts: dict[str, list[torch.Tensor]] = {"vit": [], "pixel": []}
    for output, _ in _eval_outputs(model, loader, Precision.for_device(device, cfg.train.amp)):
        for name, chunks in parts.items():
            chunks.append(output.probabilities(name).double().cpu())
    return {name: torch.cat(chunks).numpy() for name, chunks in parts.items()}
