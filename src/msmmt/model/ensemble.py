"""A seed ensemble of MSMMT networks: K members trained apart, their probabilities averaged.

With ``model.members = K > 1`` the model is K networks of the same architecture, member k
trained on the same clips with seed ``seed + 1000 k`` (:func:`member_seed`; member 0 is the
single network of that seed), and one pixel head when ``model.pixel_blend > 0``
(docs/METHOD.md, "Seed ensemble")::

    p_vit  = (1 / K) sum_k softmax(logits_k)
    logits = log p_vit                              (so softmax(logits) = p_vit)
    p      = (1 - w) p_vit + w softmax(pixel_logits)

The output is an :class:`~msmmt.model.msmmt.MSMMTOutput` like a single network's, so
prediction, spotting, explanations and checkpoints treat both alike; its patch weights are
the members' means (each in [0, 1]) and it has no contrastive embeddings (those belong to
each member's training).
"""

from __future__ import annotations

import torch
from torch import nn

from msmmt.config import ModelConfig
from msmmt.model.msmmt import MSMMT, MSMMTOutput, mean_probability_logits
from msmmt.model.pixel_head import PixelHead

__all__ = ["SeedEnsemble", "member_config", "member_seed"]

SEED_STRIDE = 1000
"""Member k trains with ``seed + 1000 k``: runs of nearby seeds (0, 1, 2) share no member."""


def member_seed(seed: int, k: int) -> int:
    """The training seed of member k of an ensemble trained with ``seed``."""
    return seed + SEED_STRIDE * k


def member_config(cfg: ModelConfig) -> ModelConfig:
    """One member's network: ``cfg`` as a single network without a pixel head."""
    return cfg.model_copy(update={"members": 1, "pixel_blend": 0.0}, deep=True)


class SeedEnsemble(nn.Module):
    """K :class:`~msmmt.model.msmmt.MSMMT` members and an optional pixel head (module
    docstring). Build it with :func:`msmmt.model.build.build_model`.

    Args:
        cfg: the model section, ``members`` >= 2.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.members < 2:
            raise ValueError(f"a seed ensemble needs model.members >= 2, got {cfg.members}")
        self.cfg = cfg.model_copy(deep=True)
        self.members = nn.ModuleList(MSMMT(member_config(cfg)) for _ in range(cfg.members))
        self.pixel_head = PixelHead.for_config(cfg)

    @property
    def patch_size(self) -> tuple[int, int]:
        """The members' patch size (p, p)."""
        return self.members[0].patch_size

    def set_execution(self, **options: bool | None) -> None:
        """Choose how the members' backbones run; see :meth:`MSMMT.set_execution`."""
        for member in self.members:
            member.set_execution(**options)

    def forward(
        self, texture: torch.Tensor | None = None, motion: torch.Tensor | None = None
    ) -> MSMMTOutput:
        """Run every member on the batch; ``logits = log mean_k softmax(logits_k)``, patch
        weights averaged, and the pixel head's logits when it is fitted."""
        outputs = [member(texture, motion) for member in self.members]
        logits = mean_probability_logits([o.logits for o in outputs])
        weights = {
            key: torch.stack([o.patch_weights[key] for o in outputs]).mean(0)
            for key in outputs[0].patch_weights
        }
        output = MSMMTOutput(logits, None, None, weights)
        return output.with_pixel_head(self.pixel_head, motion, self.cfg.pixel_blend)
