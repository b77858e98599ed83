"""Do the patch weights point at what moved, and does the decision rest on those patches?

Two measures of an explanation's faithfulness (docs/METHOD.md, "Patch weighting"), for
clips whose moving region is known, as in the synthetic data, where after face
alignment the only motion is the expression:

* **moving region**: the patches of a grid whose mean optical strain (channel 2 of
  the motion image, the ``|e|`` map scaled to [0, 1]) is among the largest
  ``fraction`` of the grid (:func:`moving_region`); chance of hitting it with one
  patch is ``fraction`` (a little more with ties);
* **pointing game** (Zhang et al., ECCV 2016): a hit when the patch with the largest
  weight g lies in the moving region (:func:`pointing_hits`);
* **deletion** (Petsiuk et al., BMVC 2018, RISE): mask the k patches with the
  largest scale-1 weights of each modality, replacing their pixels by the image's
  per-channel median (for the motion image: about zero motion), and measure the drop
  ``p_c(x) - p_c(x_masked)`` of the originally predicted class c; compare with
  masking k random patches (:func:`deletion_drops`). Faithful weights make the
  top-k drop larger than the random one.

The weights of the ``paper`` variant are computed but inert, and a ``none`` model can
be switched to ``paper`` without changing its output, so both give the post-hoc
rollout explanation of their model; ``attention`` and ``post-norm`` explain with the
weights they applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from msmmt.model.ensemble import SeedEnsemble
from msmmt.model.msmmt import MSMMT, resize, scale_size

__all__ = ["deletion_drops", "mask_patches", "moving_region", "patch_means", "pointing_hits"]


def patch_means(image: torch.Tensor, side: int, patch: int) -> torch.Tensor:
    """Mean of ``image`` ``(B, H, W)`` over each patch after resizing it to ``side``.

    As the model sees a scale: resized (bilinear, antialiased) to ``side x side`` and
    cut into ``patch x patch`` cells from the top left; the last row and column of
    cells may run past the image (timm's padding) and average only the pixels inside.

    Returns:
        ``(B, grid, grid)``, grid = ceil(side / patch).
    """
    resized = resize(image[:, None].float(), side)
    grid = math.ceil(side / patch)
    pad = grid * patch - side
    total = F.pad(resized, (0, pad, 0, pad))
    count = F.pad(torch.ones_like(resized), (0, pad, 0, pad))
    sums = F.avg_pool2d(total, patch) / F.avg_pool2d(count, patch)
    return sums[:, 0]


def moving_region(
    motion: torch.Tensor, img_size: int, scale: int, patch: int, fraction: float = 0.25
) -> torch.Tensor:
    """The moving patches at one scale: the ``ceil(fraction * n)`` patches with the
    largest mean optical strain (ties included).

    Args:
        motion: ``(B, 3, H, W)`` motion images in [0, 1] (u, v, |e|).
        img_size: the model's base size m; the scale's side is round(m / scale).
        scale: down-sampling factor.
        patch: patch side p.
        fraction: share of the grid counted as moving.

    Returns:
        ``(B, grid, grid)`` boolean mask.
    """
    base = resize(motion, img_size)[:, 2]
    strain = patch_means(base, scale_size(img_size, scale), patch).flatten(1)
    k = max(1, math.ceil(fraction * strain.shape[1]))
    threshold = strain.topk(k, dim=1).values[:, -1:]
    grid = int(round(math.sqrt(strain.shape[1])))
    return (strain >= threshold).reshape(-1, grid, grid)


def pointing_hits(weights: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``(B,)`` True where the largest of ``weights`` ``(B, gh, gw)`` lies in ``region``."""
    top = weights.flatten(1).argmax(dim=1)
    return region.flatten(1).gather(1, top[:, None])[:, 0]


def mask_patches(image: torch.Tensor, patches: torch.Tensor, patch: int) -> torch.Tensor:
    """Replace the pixels of the listed patches of a base-size image by its channel medians.

    Args:
        image: ``(3, m, m)`` image; patch ``j`` of the row-major ``ceil(m / p)``-wide grid
            covers rows ``(j // w) p ..`` and columns ``(j % w) p ..`` (cut at the border).
        patches: 1-D indices of the patches to mask.
        patch: patch side p.
    """
    out = image.clone()
    fill = image.flatten(1).median(dim=1).values[:, None, None]
    width = math.ceil(image.shape[-1] / patch)
    for j in patches.tolist():
        r, c = divmod(j, width)
        out[:, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = fill
    return out


@torch.no_grad()
def deletion_drops(
    model: MSMMT | SeedEnsemble,
    images: dict[str, torch.Tensor],
    ks: Sequence[int],
    n_random: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability drops of the predicted class when the top-k / k random patches go.

    Args:
        model: an MSMMT (or seed ensemble) in eval mode with patch weights (any variant but ``none``).
        images: modality -> ``(B, 3, m, m)`` images at the model's base size m.
        ks: numbers of patches masked per modality (at most the scale-1 grid).
        n_random: random draws of k patches averaged per clip and k.
        seed: seed of the random draws.

    Returns:
        ``(B, len(ks))`` drops for the top-weighted patches and for random patches.
    """
    patch = model.patch_size[0]
    out = model(**images)
    proba = out.logits.softmax(dim=1)
    predicted = proba.argmax(dim=1)
    g = torch.Generator().manual_seed(seed)
    top = np.zeros((proba.shape[0], len(ks)))
    rand = np.zeros_like(top)
    for b in range(proba.shape[0]):
        orders = {m: out.patch_weights[f"{m}@1"][b].flatten().argsort(descending=True) for m in images}
        n = min(len(o) for o in orders.values())
        batch = {m: [] for m in images}
        for k in ks:
            picks = [{m: o[:k] for m, o in orders.items()}]
            picks += [{m: torch.randperm(n, generator=g)[:k] for m in images} for _ in range(n_random)]
            for pick in picks:
                for m in images:
                    batch[m].append(mask_patches(images[m][b], pick[m], patch))
        masked = model(**{m: torch.stack(v) for m, v in batch.items()}).logits.softmax(dim=1)
        drops = (proba[b, predicted[b]] - masked[:, predicted[b]]).reshape(len(ks), 1 + n_random)
        top[b], rand[b] = drops[:, 0].numpy(), drops[:, 1:].mean(dim=1).numpy()
    return top, rand
