"""The pre-norm ViT block on packed multi-scale sequences, owned by msmmt.

timm's ``Block.forward`` / ``Attention.forward`` run one sequence and return no
attention probabilities. MSMMT needs three things they do not do: the head-mean
attention of the first L-1 blocks (for the patch weights), attention confined to
each scale's span of a packed sequence (so one pass serves every scale, as in
NaViT's sequence packing, Dehghani et al. 2023), and a last block that is
evaluated for the class tokens only and applies the patch weights (the
``post-norm`` and ``attention`` variants of :mod:`msmmt.model.patch_weighting`).
So the block is written here from the parameters of timm's ``Block``:

    y = x + drop_path(ls1(Attn(norm1(x))))
    z = y + drop_path(ls2(mlp(norm2(y))))
    Attn(h) = proj(norm(softmax(q k^T / sqrt(d) + b) v) [* sigmoid(gate(h))])

with ``q, k, v = qkv(h)`` split into heads, ``q_norm`` / ``k_norm`` applied to q and
k, and b the optional ``log g`` bias. It reads the submodules of timm's
``Attention`` (``qkv``, ``q_norm``, ``k_norm``, ``attn_drop``, ``norm``, ``proj``,
``proj_drop``, ``gate`` if present) and ``Block`` (``norm1``, ``ls1``,
``drop_path1``, ``norm2``, ``mlp``, ``ls2``, ``drop_path2``). ``Attention.norm``
appeared in timm 1.0.16 (older versions are refused when a backbone is built:
:data:`REQUIRED` lists what is checked). ``tests/test_backbone.py`` checks that this
block equals timm's own forward (layer scale, qk-norm and the output norm included)
for the installed timm. The range pinned in ``pyproject.toml``, timm 1.0.22 to
1.0.31, is the one whose two ends pass the model tests (1.0.16-1.0.21 run this block
too, but cannot build a ViT on the meta device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["REQUIRED", "block_forward", "missing_parts"]

REQUIRED = {
    "block": ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2"),
    "attn": ("num_heads", "head_dim", "scale", "qkv", "q_norm", "k_norm", "attn_drop", "norm",
             "proj", "proj_drop"),
}
"""The attributes of timm's ``Block`` and ``Attention`` that :func:`block_forward` reads."""


def missing_parts(block: nn.Module) -> list[str]:
    """The attributes of :data:`REQUIRED` that ``block`` lacks (empty: supported)."""
    missing = [f"Block.{name}" for name in REQUIRED["block"] if not hasattr(block, name)]
    attn = getattr(block, "attn", None)
    if attn is not None:
        missing += [f"Attention.{name}" for name in REQUIRED["attn"] if not hasattr(attn, name)]
    return missing


def block_forward(
    block: nn.Module,
    x: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    *,
    cls_only: bool = False,
    need_probs: bool = False,
    fused: bool = True,
    kv_scale: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """One pre-norm block on a packed sequence; each token attends within its span.

    Args:
        block: a timm ``Block``.
        x: ``(B, N, D)`` packed tokens; span ``(start, end)`` holds one scale, class
            token first.
        spans: the spans, in order, covering ``x``.
        cls_only: return only the class token of each span, ``(B, len(spans), D)``;
            the other tokens still give keys and values.
        need_probs: also return each span's head-mean attention ``(B, n, n)``.
        fused: use the fused kernel when the probabilities are not needed.
        kv_scale: ``(B, N)`` factors on ``norm1(x)`` for keys and values only (``post-norm``).
        bias: ``(B, N)`` added to the attention logits over the keys (``attention``).

    Returns:
        The block's output and, with ``need_probs``, the per-span attention.
    """
    out, probs = _attention(block.attn, block.norm1(x), spans, cls_only, need_probs, fused,
                            kv_scale, bias)
    if cls_only:
        x = x[:, [start for start, _ in spans]]
    x = x + block.drop_path1(block.ls1(out))
    x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    return x, probs


def _attention(
    attn: nn.Module,
    h: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    cls_only: bool,
    need_probs: bool,
    fused: bool,
    kv_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """timm's ``Attention.forward`` on the normalised packed tokens ``h``, per span."""
    B, N, _ = h.shape
    heads, dim = attn.num_heads, attn.head_dim
    width = heads * dim
    weight, b = attn.qkv.weight, attn.qkv.bias
    h_q = h[:, [start for start, _ in spans]] if cls_only else h
    h_kv = h if kv_scale is None else h * kv_scale.unsqueeze(-1).to(h.dtype)
    q = F.linear(h_q, weight[:width], None if b is None else b[:width])
    q = q.reshape(B, h_q.shape[1], heads, dim).transpose(1, 2)
    kv = F.linear(h_kv, weight[width:], None if b is None else b[width:])
    k, v = kv.reshape(B, N, 2, heads, dim).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    lengths = [end - start for start, end in spans]
    # split, not slices: the backward of a split is one concatenation
    q_split = q.split(1 if cls_only else lengths, dim=2)
    biases = [None] * len(spans) if bias is None else bias.split(lengths, dim=1)
    outs, probs = [], []
    for q_s, k_s, v_s, b_s in zip(
        q_split, k.split(lengths, dim=2), v.split(lengths, dim=2), biases, strict=True
    ):
        b_s = None if b_s is None else b_s[:, None, None, :].to(q.dtype)  # (B, 1, 1, n)
        if need_probs or not fused:
            logits = (q_s * attn.scale) @ k_s.transpose(-2, -1)
            p = (logits if b_s is None else logits + b_s).softmax(dim=-1)
            outs.append(attn.attn_drop(p) @ v_s)
            probs.append(p.mean(dim=1))
        else:
            drop = attn.attn_drop.p if attn.training else 0.0
            outs.append(F.scaled_dot_product_attention(q_s, k_s, v_s, attn_mask=b_s, dropout_p=drop))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    out = attn.norm(out.transpose(1, 2).reshape(B, q.shape[2], width))
    if getattr(attn, "gate", None) is not None:
        out = out * attn.gate(h_q).sigmoid()
    return attn.proj_drop(attn.proj(out)), probs if need_probs else None
