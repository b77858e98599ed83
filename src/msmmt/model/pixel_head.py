"""A linear classifier on the motion image's pixels, blended with the ViT's output.

With ``model.pixel_blend = w > 0`` the network carries, beside its ViT streams, a
multinomial logistic regression on the motion image resampled to ``S x S`` (``model.pixel_size``)
and standardised with statistics of the training clips (docs/METHOD.md, "Pixel head")::

    x = Resample_S(motion)                 (3 S^2 features, 1176 at S = 28; bicubic)
    z = (x - mu) / sigma                   (mu, sigma: the training clips' mean and std)
    pixel_logits = W z + b
    p = (1 - w) softmax(vit_logits) + w softmax(pixel_logits)

``W, b, mu, sigma`` are buffers, not parameters: they are fitted in closed form after the
ViT's training (:func:`msmmt.engine.pixel_head.fit_pixel_head`, the same estimator as the
``logreg`` baseline), are saved in the checkpoint with the other weights and never receive
gradients. Until fitted (``fitted`` is 0) the head contributes nothing, so training sees the
ViT's logits alone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msmmt.config import ModelConfig

__all__ = ["PixelHead", "blend"]

_ABSENT = -1.0e4
"""Logit of a class the training clips lacked (softmax weight ~0, no inf/NaN)."""


def blend(vit, pixel, weight: float):
    """``(1 - w) vit + w pixel``: a blended model's class probabilities from its ViT's and its
    pixel head's (tensors or arrays of the same shape; module docstring)."""
    return (1.0 - weight) * vit + weight * pixel


class PixelHead(nn.Module):
    """``pixel_logits = W (Resample_S(motion) - mu) / sigma + b`` (module docstring).

    Args:
        num_classes: C, the width of the logits.
        size: S, the side the motion image is resampled to.
    """

    def __init__(self, num_classes: int, size: int) -> None:
        super().__init__()
        self.size = size
        dim = 3 * size * size
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("weight", torch.zeros(num_classes, dim))
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    @classmethod
    def for_config(cls, cfg: ModelConfig) -> PixelHead | None:
        """The (unfitted) head a model with ``cfg`` carries; None when ``cfg.pixel_blend`` is 0."""
        return cls(cfg.num_classes, cfg.pixel_size) if cfg.pixel_blend > 0 else None

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def features(self, motion: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` motion images in [0, 1] -> ``(B, 3 S^2)`` resampled pixels x.

        Bicubic interpolation at the S x S grid's pixel centres (half-pixel convention, no
        antialiasing; equal to OpenCV's ``INTER_CUBIC``): the composite release's 28 px flow
        image, upsampled to the model's input (linear), comes back within 1.2 grey levels
        on average, where averaging pooling blurs it by 4.4 (docs/METHOD.md, "Pixel head").
        """
        x = F.interpolate(motion.float(), size=(self.size, self.size), mode="bicubic",
                          align_corners=False)
        return x.flatten(1)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits ``W z + b`` of the standardised resampled pixels."""
        z = (self.features(motion) - self.mean) / self.scale
        return z @ self.weight.T + self.bias

    def load_linear(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
    ) -> None:
        """Take a fitted linear model over the classes ``classes`` (indices into the C outputs).

        ``coef`` is ``(K, D)`` for K >= 3 seen classes, or ``(1, D)`` for two (scikit-learn's
        binary form: the logit of ``classes[1]`` against ``classes[0]``); classes never seen
        get a logit of -1e4.
        """
        classes = np.asarray(classes, dtype=np.int64)
        coef, intercept = np.atleast_2d(coef), np.atleast_1d(intercept)
        weight = np.zeros(tuple(self.weight.shape))
        bias = np.full(self.bias.shape[0], _ABSENT)
        if len(classes) == 2 and coef.shape[0] == 1:
            bias[classes[0]] = 0.0
            weight[classes[1]], bias[classes[1]] = coef[0], intercept[0]
        else:
            weight[classes], bias[classes] = coef, intercept
        for name, value in (("mean", mean), ("scale", scale), ("weight", weight), ("bias", bias)):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(np.asarray(value), dtype=buffer.dtype).reshape(buffer.shape))
        self.fitted.fill_(1)
