"""Attention-guided patch weighting (paper section 3.3.2, eqs 12-15) and where it acts.

The attention probabilities of the first L-1 encoder blocks are rolled out into
one token-to-token matrix, whose column means say how much each token is
attended to overall. Those weights g, scaled to a maximum of 1, then act on the
last block in one of the ways :data:`VARIANTS` names (``model.patch_weighting``);
the class token is never weighted (g_0 = 1) and no token is dropped:

* ``paper``: eq 15 literally, :func:`weight_tokens` on the tokens entering the
  pre-norm last block. Inert: ``LN(g x) = LN(x)`` for g > 0, so the class token
  reads the same keys and values (see docs/METHOD.md, "Patch weighting");
* ``post-norm``: keys and values of the last block from ``g_j LN_1(x_j)``
  (:func:`token_scale` applied after the norm);
* ``attention``: the class token's attention logits get ``+ log g_j``
  (:func:`logit_bias`), i.e. ``p_j ∝ g_j exp(q·k_j / sqrt(d))``;
* ``none``: no weighting (the rollout is not computed).

All functions are pure and batched: tensors in, tensors out, differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "APPLIED",
    "VARIANTS",
    "logit_bias",
    "normalize_attention",
    "patch_weights",
    "rollout",
    "token_scale",
    "weight_tokens",
]

VARIANTS = ("none", "paper", "post-norm", "attention")
"""The values of ``model.patch_weighting``."""
APPLIED = ("post-norm", "attention")
"""The variants whose weights change the class token (``paper`` computes g but is inert)."""


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


def token_scale(weights: torch.Tensor) -> torch.Tensor:
    """``[1, g_1, ..., g_n]``: the per-token factor of eq 15, the class token's set to 1.

    Args:
        weights: ``(B, N)`` from :func:`patch_weights`; its class-token entry is ignored.

    Returns:
        ``(B, N)`` factors.
    """
    return torch.cat([torch.ones_like(weights[:, :1]), weights[:, 1:]], dim=1)


def weight_tokens(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq 15: ``[cls, g_1 z_1, ..., g_n z_n]``; before a pre-norm block this is inert
    (``paper``), after its norm it scales keys and values (``post-norm``).

    Args:
        tokens: ``(B, N, D)`` tokens, class token first.
        weights: ``(B, N)`` from :func:`patch_weights`; its class-token entry is ignored.

    Returns:
        ``(B, N, D)`` tokens with every patch token scaled by its weight.
    """
    return tokens * token_scale(weights).unsqueeze(-1)


def logit_bias(weights: torch.Tensor) -> torch.Tensor:
    """``log g_j`` (0 for the class token), added to the attention logits (``attention``).

    ``softmax(s + log g)_j = g_j exp(s_j) / sum_k g_k exp(s_k)``: a patch's share of the
    class token's attention is scaled by its weight, and ``g = 1`` gives the plain block.
    ``g_j`` is clamped at the smallest normal float of its dtype (log ~ -87.3 in
    float32) only so that ``g_j = 0`` gives a finite logit and no NaN gradient; the
    patch's probability ``exp(-87) / sum`` then underflows to 0, removing it exactly.

    Args:
        weights: ``(B, N)`` from :func:`patch_weights`; its class-token entry is ignored.

    Returns:
        ``(B, N)`` additive attention bias over the keys.
    """
    scale = token_scale(weights)
    return scale.clamp_min(torch.finfo(scale.dtype).tiny).log()
