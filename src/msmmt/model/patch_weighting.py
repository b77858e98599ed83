"""Attention-guided patch weighting (DESIGN.md eqs 12-15, paper section 3.3.2).

The attention probabilities of the first L-1 encoder blocks are rolled out into
one token-to-token matrix, whose column means say how much each token is
attended to overall. Those weights, scaled to a maximum of 1, multiply the patch
tokens that enter the last block; the class token passes unweighted and no
token is dropped.

All functions are pure and batched: tensors in, tensors out, differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["normalize_attention", "rollout", "patch_weights", "weight_tokens"]


def normalize_attention(attention: torch.Tensor, residual: bool = False) -> torch.Tensor:
    """Eq 12: ``G_l``, the head mean of one block's attention, rows renormalised to sum 1.

    Args:
        attention: ``(B, N, N)`` head-mean attention probabilities, or ``(B, H, N, N)``
            per head (averaged over ``H`` here).
        residual: add the identity before renormalising, for the residual path
            (attention rollout, Abnar & Zuidema, ACL 2020).

    Returns:
        ``(B, N, N)`` row-stochastic matrix ``G_l``.
    """
    if attention.dim() == 4:
        attention = attention.mean(dim=1)
    if attention.dim() != 3 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(
            f"attention must be (B, N, N) or (B, H, N, N), got shape {tuple(attention.shape)}"
        )
    if residual:
        attention = attention + torch.eye(
            attention.shape[-1], dtype=attention.dtype, device=attention.device
        )
    return attention / attention.sum(dim=-1, keepdim=True)


def rollout(attentions: Sequence[torch.Tensor], residual: bool = False) -> torch.Tensor:
    """Eq 13: ``G = G_{L-1} @ ... @ G_2 @ G_1`` over the first L-1 blocks, in block order.

    Args:
        attentions: one ``(B, N, N)`` (or ``(B, H, N, N)``) tensor per block, first block first.
        residual: see :func:`normalize_attention`.

    Returns:
        ``(B, N, N)`` rolled-out attention, row-stochastic.
    """
    if len(attentions) == 0:
        raise ValueError("rollout needs the attention of at least one block")
    result = normalize_attention(attentions[0], residual)
    for attention in attentions[1:]:
        result = normalize_attention(attention, residual) @ result
    return result


def patch_weights(attentions: Sequence[torch.Tensor], residual: bool = False) -> torch.Tensor:
    """Eqs 12-14: one weight in [0, 1] per token from the first L-1 blocks' attention.

    ``g = mean(G, rows) / max(mean(G, rows))`` with ``G`` from :func:`rollout`: the
    average attention each token receives, scaled so the most attended token has
    weight 1.

    Args:
        attentions: one ``(B, N, N)`` (or ``(B, H, N, N)``) tensor per block, first block first.
        residual: see :func:`normalize_attention`.

    Returns:
        ``(B, N)`` weights, index 0 being the class token; the patch tokens' weights
        are ``[:, 1:]`` in the backbone's row-major patch order.
    """
    g = rollout(attentions, residual).mean(dim=-2)
    return g / g.amax(dim=-1, keepdim=True)


def weight_tokens(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq 15: ``[cls, g[1:] * patches]``, the input of the last block.

    Args:
        tokens: ``(B, N, D)`` output of block L-1, class token first.
        weights: ``(B, N)`` from :func:`patch_weights`; its class-token entry is ignored.

    Returns:
        ``(B, N, D)`` tokens with every patch token scaled by its weight.
    """
    scale = torch.cat([torch.ones_like(weights[:, :1]), weights[:, 1:]], dim=1)
    return tokens * scale.unsqueeze(-1)
