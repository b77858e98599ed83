"""A convolutional stem in place of the ViT's patch embedding (docs/METHOD.md, "Convolutional stem").

A ViT's patch embedding is one ``p x p`` convolution of stride ``p``: a linear map of
each patch's pixels, with no notion that neighbouring pixels belong together. Trained
from scratch on a few hundred clips it has to learn that from the data. The stem of
Xiao et al. (2021) replaces it with ``k = log2(p)`` stride-2 ``3 x 3`` convolutions, each
followed by a GELU, and a ``1 x 1`` convolution to the embedding width:

``x -> GELU(conv3x3/2) -> ... -> GELU(conv3x3/2) -> conv1x1 -> (B, D, H/p, W/p)``

with widths ``D / 2^(k-1), ..., D / 2, D``. The output grid is the patch grid, so position
embeddings, scales and patch weights are unchanged; the receptive fields of
neighbouring tokens overlap (a token sees ``2^(k+1) - 1`` pixels a side instead of ``p``).

References
----------
T. Xiao, M. Singh, E. Mintun, T. Darrell, P. Dollár, R. Girshick, "Early Convolutions
Help Transformers See Better", NeurIPS 2021.
A. Hassani et al., "Escaping the Big Data Paradigm with Compact Transformers", 2021.
"""

from __future__ import annotations

from torch import nn

__all__ = ["conv_stem", "stem_depth"]


def stem_depth(patch_size: int) -> int:
    """``k`` with ``2^k = patch_size``; a ValueError unless ``patch_size`` is a power of 2 >= 2."""
    k = patch_size.bit_length() - 1
    if patch_size < 2 or 2**k != patch_size:
        raise ValueError(f"a convolutional stem needs a patch size that is a power of 2, got {patch_size}")
    return k


def conv_stem(in_chans: int, embed_dim: int, patch_size: int) -> nn.Sequential:
    """The stem that maps ``(B, in_chans, H, W)`` to ``(B, embed_dim, H / p, W / p)``
    (H, W multiples of ``p = patch_size``), as a drop-in for ``PatchEmbed.proj``."""
    k = stem_depth(patch_size)
    widths = [in_chans] + [max(1, embed_dim // 2 ** (k - 1 - i)) for i in range(k)]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
    layers.append(nn.Conv2d(widths[-1], embed_dim, 1))
    return nn.Sequential(*layers)
