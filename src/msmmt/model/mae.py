"""Masked-autoencoder pretraining of a backbone (He et al. 2022; docs/METHOD.md, "Label-free
pretraining").

:class:`MaskedAutoencoder` wraps a :class:`~msmmt.model.backbone.ViTBackbone`. For an image
of N patches it keeps a random subset of ``n_keep = round(N (1 - r))`` patch tokens (at least 1, at most N - 1)
(``r`` the mask ratio, drawn independently for every image), encodes them with the class
token through all the backbone's blocks and its final norm, and a light decoder (a linear map
to width ``d``, a learned mask token in place of every hidden patch, a fixed 2-D sin-cos
position embedding, ``decoder_depth`` transformer blocks, a norm and a linear map to the
``p x p x 3`` pixels of a patch) reconstructs the image. The loss is the mean squared error
over the hidden patches only, on the pixels the backbone sees (normalised with its mean and
std):

    L = 1 / (|M| p^2 3) sum_{i in M} || x_i - x_hat_i ||^2

No label is used, so the images of a fold's training clips (never its test subject) are
fair data for it. Only the backbone's weights are kept afterwards; the decoder is discarded.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from msmmt.model.backbone import ViTBackbone

__all__ = ["MAEOutput", "MaskedAutoencoder", "patchify", "random_keep"]


class MAEOutput(NamedTuple):
    """What :class:`MaskedAutoencoder` returns for a batch of B images of N patches."""

    loss: torch.Tensor
    """Scalar: mean squared error over the hidden patches' pixels."""
    prediction: torch.Tensor
    """``(B, N, p * p * 3)`` reconstructed patches (every patch, visible ones included)."""
    target: torch.Tensor
    """``(B, N, p * p * 3)`` the normalised patches to reconstruct."""
    mask: torch.Tensor
    """``(B, N)`` boolean, True for the hidden patches."""


def patchify(image: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, (H/p)(W/p), p * p * C)``, patches in row-major order and each
    patch's pixels as ``(row, column, channel)``."""
    b, c, h, w = image.shape
    if h % patch or w % patch:
        raise ValueError(f"image side {h}x{w} is not a multiple of the patch size {patch}")
    x = image.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def random_keep(batch: int, n: int, n_keep: int, device=None) -> torch.Tensor:
    """``(batch, n_keep)`` indices of the patches each image keeps: the first ``n_keep`` of
    an independent uniform random permutation of ``range(n)`` per image (global RNG)."""
    return torch.rand(batch, n, device=device).argsort(dim=1)[:, :n_keep]


class MaskedAutoencoder(nn.Module):
    """A backbone with an MAE decoder; see the module docstring.

    Args:
        backbone: the encoder, trained in place.
        mask_ratio: share r of the patches hidden from the encoder, in (0, 1).
        decoder_dim: width d of the decoder.
        decoder_depth: its transformer blocks.
        decoder_heads: their attention heads.
    """

    def __init__(
        self,
        backbone: ViTBackbone,
        *,
        mask_ratio: float = 0.75,
        decoder_dim: int = 64,
        decoder_depth: int = 1,
        decoder_heads: int = 2,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.backbone = backbone
        self.mask_ratio = mask_ratio
        patch = backbone.patch_size
        if patch[0] != patch[1]:
            raise ValueError(f"MAE pretraining needs square patches, got {patch}")
        self.patch = patch[0]
        self.decoder_embed = nn.Linear(backbone.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_dim, decoder_heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch * self.patch * 3)
        nn.init.normal_(self.mask_token, std=0.02)

    def n_keep(self, n: int) -> int:
        """Patches an image of ``n >= 2`` patches keeps: ``round(n (1 - r))``, clipped to
        ``[1, n - 1]`` so that at least one patch is seen and one hidden."""
        if n < 2:
            raise ValueError(f"MAE needs at least 2 patches per image, got {n}")
        return min(n - 1, max(1, round(n * (1.0 - self.mask_ratio))))

    def encode(self, image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The backbone on the class token and the kept patches: ``(B, 1 + n_keep, D)``."""
        tokens, _ = self.backbone.embed(image)
        index = (keep + 1).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        x = torch.cat([tokens[:, :1], tokens.gather(1, index)], dim=1)
        vit = self.backbone.vit
        return vit.norm(vit.blocks(x))

    def decode(self, encoded: torch.Tensor, keep: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Every patch's pixels ``(B, N, p * p * 3)`` from the encoded kept tokens."""
        x = self.decoder_embed(encoded)
        b, n = x.shape[0], grid[0] * grid[1]
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), x[:, 1:])
        pos = build_sincos2d_pos_embed(list(grid), x.shape[-1], device=x.device, dtype=x.dtype)
        x = torch.cat([x[:, :1], full + pos.unsqueeze(0)], dim=1)
        return self.decoder_pred(self.decoder_norm(self.decoder_blocks(x)))[:, 1:]

    def forward(self, image: torch.Tensor, keep: torch.Tensor | None = None) -> MAEOutput:
        """Reconstruct ``(B, 3, H, W)`` images in [0, 1] (sides multiples of the patch) from
        the patches ``keep`` (``(B, n_keep)`` indices; drawn by :func:`random_keep` if None)."""
        target = patchify(self.backbone.normalise(image), self.patch)
        b, n = target.shape[:2]
        grid = (image.shape[-2] // self.patch, image.shape[-1] // self.patch)
        if keep is None:
            keep = random_keep(b, n, self.n_keep(n), image.device)
        mask = torch.ones(b, n, dtype=torch.bool, device=image.device)
        mask.scatter_(1, keep, False)
        prediction = self.decode(self.encode(image, keep), keep, grid)
        error = (prediction - target).pow(2).mean(dim=-1)
        loss = error[mask].mean()
        return MAEOutput(loss, prediction, target, mask)
