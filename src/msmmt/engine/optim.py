"""The optimiser and the learning-rate schedule of training (paper, section 4.4).

AdamW with decoupled weight decay on the weight matrices only: biases, normalisation
weights (every parameter of at most one dimension) and what a module names in its
``no_weight_decay()`` (timm's ViT: ``pos_embed``, ``cls_token``) are not decayed, as
in timm's and the original ViT's training recipes. The schedule is a per-step factor
of the base learning rate: linear warm-up, then constant or cosine decay (``docs/METHOD.md``,
"Training").
"""

from __future__ import annotations

import math

import torch
from torch import nn

from msmmt.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_factor", "no_weight_decay_names"]


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters that are not decayed: those of at most one dimension
    (biases, norm weights) and those a sub-module lists in its ``no_weight_decay()``."""
    names = {name for name, p in model.named_parameters() if p.ndim <= 1}
    for prefix, module in model.named_modules():
        listed = getattr(module, "no_weight_decay", None)
        if callable(listed):
            names |= {f"{prefix}.{n}" if prefix else n for n in listed()}
    return names


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW at ``cfg.lr``; group 0 decays by ``cfg.weight_decay``, group 1 (see
    :func:`no_weight_decay_names`) not at all. Frozen parameters are left out."""
    skip = no_weight_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The :func:`lr_factor` schedule over ``cfg.epochs`` epochs, stepped once per batch."""
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, cfg.schedule)
    )
