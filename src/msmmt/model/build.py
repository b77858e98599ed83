"""The network a model config describes: :func:`build_model`."""

from __future__ import annotations

from msmmt.config import ModelConfig
from msmmt.model.ensemble import SeedEnsemble
from msmmt.model.msmmt import MSMMT

__all__ = ["build_model"]


def build_model(cfg: ModelConfig) -> MSMMT | SeedEnsemble:
    """One :class:`~msmmt.model.msmmt.MSMMT` (weights as ``cfg.pretrained`` says), or a
    :class:`~msmmt.model.ensemble.SeedEnsemble` of ``cfg.members`` of them."""
    return SeedEnsemble(cfg) if cfg.members > 1 else MSMMT(cfg)
