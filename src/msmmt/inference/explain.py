"""Which facial regions drove a decision: MSMMT's patch weights drawn over the face.

The weights are eq 14's g (attention rollout of the first L-1 blocks, averaged over
query tokens, divided by its max), one value in [0, 1] per patch, for each modality
and scale (``MSMMTOutput.patch_weights``, keys ``"texture@1"``, ``"motion@4"``...).
Whether the model used them depends on ``model.patch_weighting``
(docs/METHOD.md, "Patch weighting"): ``attention`` and ``post-norm`` apply them to
the last block; ``paper`` computes them but they are inert (eq 15 before a pre-norm
block: LN(g x) = LN(x)), so its drawing is a post-hoc attention rollout; ``none``
computes none. The figure says which, and draws every map on the same absolute
scale, g = 0 to 1, with each map's range in its title.
At scale s the modality image of base size m is resized to round(m / s) and cut into
p x p patches, so one patch covers p / round(m / s) of the image side; a grid padded to a whole
number of patches (timm ``dynamic_img_pad``) runs past the image's right and bottom
edges, and that part is cropped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from msmmt.core.io import atomic_path
from msmmt.model.msmmt import scale_size

__all__ = ["USE", "draw_patch_weights", "patch_heatmap", "split_key"]

USE = {
    "attention": "applied: + log g on the class token's attention logits in the last block",
    "post-norm": "applied: g scales the normalised keys and values of the last block",
    "paper": "NOT applied: eq 15 literally, computed but inert (LN(g x) = LN(x))",
    "none": "not computed (plain ViT)",
}
"""What the drawn weights did in the model, per ``model.patch_weighting`` variant."""


def split_key(key: str) -> tuple[str, int]:
    """``"motion@4"`` -> ``("motion", 4)``."""
    modality, _, scale = key.partition("@")
    if not scale.isdigit():
        raise ValueError(f"patch-weight key {key!r}: expected MODALITY@SCALE")
    return modality, int(scale)


def patch_heatmap(weights: np.ndarray, size: int, cell: float) -> np.ndarray:
    """Expand a (grid_h, grid_w) weight grid to a size x size map; each patch is a
    ``cell``-pixel square starting at the top-left corner (the padded remainder is cut)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or cell <= 0:
        raise ValueError(f"expected a 2-D weight grid and a positive cell, got {w.shape}, {cell}")
    idx = (np.arange(size) + 0.5) / cell
    rows = np.minimum(idx.astype(int), w.shape[0] - 1)
    cols = np.minimum(idx.astype(int), w.shape[1] - 1)
    return w[np.ix_(rows, cols)]


def _by_modality(weights: dict[str, np.ndarray]) -> dict[str, dict[int, np.ndarray]]:
    """``{"texture@2": grid, ...}`` -> ``{"texture": {2: grid}, ...}``; none is an error."""
    by_modality: dict[str, dict[int, np.ndarray]] = {}
    for key, grid in weights.items():
        modality, scale = split_key(key)
        by_modality.setdefault(modality, {})[scale] = np.asarray(grid)
    if not by_modality:
        raise ValueError("no patch weights to draw (is model.patch_weighting off?)")
    return by_modality


def _wrapped(lines: list[str], width_in: float, fontsize: float) -> str:
    """``lines`` joined, each wrapped to fit a figure ``width_in`` inches wide at ``fontsize``
    points (a character taken as 0.6 of the font size: wide enough for DejaVu Sans)."""
    chars = max(20, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(part, chars) for line in lines for part in line.split("\n"))


def draw_patch_weights(
    face: np.ndarray,
    images: dict[str, np.ndarray],
    weights: dict[str, np.ndarray],
    patch_size: int,
    img_size: int,
    path: str | Path,
    title: str | None = None,
    variant: str | None = None,
) -> Path:
    """Save a grid: one row per modality, its image then one heat-map overlay per scale.

    Every heat map uses the same absolute colour scale, g = 0 (blue) to 1 (red), so
    near-uniform weights look uniform; each panel's title gives its min..max. With
    ``variant`` (a ``model.patch_weighting`` value) the figure says how the model used
    the weights (:data:`USE`).

    ``face``: the aligned face (S x S x 3 uint8) the modality images were cut from;
    ``images``: modality name -> its image (S x S x 3 uint8); ``weights``: key
    ``"modality@scale"`` -> (grid_h, grid_w) array in [0, 1]; ``patch_size`` p and
    ``img_size`` m of the model. The figure is written atomically to ``path``.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    by_modality = _by_modality(weights)
    modalities = [m for m in ("texture", "motion") if m in by_modality] + sorted(
        set(by_modality) - {"texture", "motion"}
    )
    scales = sorted({s for per in by_modality.values() for s in per})
    size = face.shape[0]
    ncols = 1 + len(scales)
    fig = Figure(figsize=(2.4 * ncols + 0.9, 2.6 * len(modalities) + 0.6), layout="constrained")
    axes = fig.subplots(len(modalities), ncols, squeeze=False)
    mappable = None
    for r, modality in enumerate(modalities):
        ax = axes[r, 0]
        if modality in images:
            ax.imshow(images[modality])
        ax.set_title(f"{modality} image", fontsize=9)
        for c, scale in enumerate(scales, start=1):
            ax = axes[r, c]
            ax.imshow(face.mean(axis=2), cmap="gray", vmin=0, vmax=255)
            grid = by_modality[modality].get(scale)
            if grid is None:
                continue
            cell = patch_size / scale_size(img_size, scale) * size
            heat = patch_heatmap(grid, size, cell)
            mappable = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            gh, gw = grid.shape
            lo, hi = float(grid.min()), float(grid.max())
            ax.set_title(f"scale 1/{scale} ({gh}x{gw})\ng min {lo:.2f}, max {hi:.2f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8)
        bar.set_label("patch weight g (eq 14), absolute scale")
    lines = [title] if title else []
    if variant is not None:
        lines.append(f"patch weighting '{variant}': {USE.get(variant, 'unknown variant')}")
    if lines:
        fig.suptitle(_wrapped(lines, fig.get_figwidth(), 9), fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return Path(path)
