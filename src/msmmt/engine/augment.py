"""Paired geometric augmentation of a clip's texture and motion images (paper, section 4.1).

Both images of a clip get the *same* random rotation (uniform in
[-rotation, rotation] degrees, counter-clockwise as displayed), scale change
(uniform in [scale0, scale1], > 1 enlarges), horizontal flip and, with
``AugmentConfig.translate``, shift (uniform in [-translate, translate] of the side per axis),
so the two modalities stay registered. An elastic warp (``AugmentConfig.elastic``) can join them: a smooth
random displacement field, the same for both images, from a ``K x K`` grid of control points
(:data:`ELASTIC_POINTS`) with independent N(0, (elastic * side)^2) displacements per axis,
interpolated bicubically over the image (Simard et al. 2003, on a coarse grid: it bends the
face's parts against each other as faces of different people differ after alignment). Random
erasing (``AugmentConfig.erase``) then sets the same box of both to each channel's median.

A horizontal flip mirrors the motion field as well as the picture: the flow's
horizontal component u changes sign, which maps the motion image's channel 0 to
1 - x (:func:`msmmt.model.mirror.flip_motion`). (A rotation would also turn the
flow vectors by the angle, but per-image min-max scaling has discarded the offsets
of u and v, so the vectors cannot be rotated back; like the paper we only move the
pixels, and keep the angle small. The same holds for the elastic warp's local turns and
stretches.)

:func:`mix_batch` mixes whole batches (mixup, CutMix), again with the same pairing,
weight and box for both modalities (docs/METHOD.md, "Training").

The functions are pure: tensors in, tensors out, randomness only through an
explicit :class:`torch.Generator` (per clip) or :class:`numpy.random.Generator` (per batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msmmt.config import AugmentConfig
from msmmt.model.mirror import flip_motion

__all__ = [
    "ELASTIC_POINTS",
    "AugmentParams",
    "apply_pair",
    "elastic_field",
    "erase",
    "erase_box",
    "mix_batch",
    "random_params",
    "warp",
]


ERASE_AREA = (0.02, 1.0 / 3.0)
"""Range of the erased box's share of the image (random erasing's defaults, as timm's)."""
ERASE_ASPECT = (0.3, 1.0 / 0.3)
"""Range of its height / width ratio, drawn log-uniformly."""
ELASTIC_POINTS = 4
"""Control points per side of the elastic warp's grid (spanning the image, corners included)."""


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: angle in degrees, scale factor, flip or not, the box to
    erase as fractions of the image ``(top, bottom, left, right)`` (None: no erasing), and the
    elastic warp's control-point displacements as fractions of the image's side, x of every
    point row by row then y of every point (``2 K^2`` values; None: no elastic warp), and the
    shift ``(x, y)`` as fractions of the image's width and height (x right, y down)."""

    angle: float = 0.0
    scale: float = 1.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)
    erase: tuple[float, float, float, float] | None = None
    elastic: tuple[float, ...] | None = None


def random_params(cfg: AugmentConfig, generator: torch.Generator) -> AugmentParams:
    """Draw angle ~ U[-rotation, rotation], scale ~ U[scale0, scale1], flip ~ Bernoulli(1/2),
    with probability ``cfg.erase`` a box to erase (:func:`erase_box`) and, with ``cfg.elastic``
    > 0, the elastic warp's ``2 K^2`` displacements ~ N(0, elastic^2), and with ``cfg.translate``
    > 0 the shift ~ U[-translate, translate]^2. An option that is off reads nothing from the
    generator, so the other draws are those of a config without it."""
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    lo, hi = cfg.scale
    box = None
    if cfg.erase > 0:
        e = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
        if e[0] < cfg.erase:
            box = erase_box(*e[1:])
    elastic = None
    if cfg.elastic > 0:
        n = 2 * ELASTIC_POINTS**2
        elastic = tuple((cfg.elastic * torch.randn(n, generator=generator, dtype=torch.float64)).tolist())
    shift = (0.0, 0.0)
    if cfg.translate > 0:
        t = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        shift = ((2.0 * t[0] - 1.0) * cfg.translate, (2.0 * t[1] - 1.0) * cfg.translate)
    return AugmentParams(
        angle=(2.0 * u[0] - 1.0) * cfg.rotation,
        scale=lo + (hi - lo) * u[1],
        flip=bool(cfg.flip and u[2] < 0.5),
        erase=box,
        elastic=elastic,
        shift=shift,
    )


def elastic_field(displacements: tuple[float, ...], h: int, w: int) -> torch.Tensor:
    """``(h, w, 2)`` displacement ``(dx, dy)`` in pixels at every pixel of an ``h x w`` image.

    ``displacements`` (as :class:`AugmentParams`: fractions of the side, x then y of the
    ``K x K`` control points, row by row) are placed on a grid whose corner points sit on the
    image's corner pixels and interpolated bicubically (``align_corners=True``), so the field
    passes through each control point's value and is smooth between them.
    """
    k = ELASTIC_POINTS
    grid = torch.tensor(displacements, dtype=torch.float64).reshape(1, 2, k, k)
    grid = grid * torch.tensor([w, h], dtype=torch.float64).reshape(1, 2, 1, 1)
    field = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)
    return field[0].permute(1, 2, 0)


def erase_box(u_area: float, u_aspect: float, u_y: float, u_x: float) -> tuple[float, float, float, float]:
    """The erased box from four uniforms in [0, 1): area ``a`` uniform in :data:`ERASE_AREA`,
    aspect ``r = h / w`` log-uniform in :data:`ERASE_ASPECT`, sides ``sqrt(a r)`` and
    ``sqrt(a / r)`` (each at most 1), placed uniformly inside the unit square; returns
    ``(top, bottom, left, right)`` as fractions of the image."""
    area = ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * u_area
    log_lo, log_hi = math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])
    aspect = math.exp(log_lo + (log_hi - log_lo) * u_aspect)
    h, w = min(1.0, math.sqrt(area * aspect)), min(1.0, math.sqrt(area / aspect))
    top, left = u_y * (1.0 - h), u_x * (1.0 - w)
    return top, top + h, left, left + w


def erase(image: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    """``image`` (C x H x W) with the pixels of ``box`` (fractions, as :func:`erase_box`;
    rounded to whole pixels, at least one) set to each channel's median over the image.

    The motion image's u and v are min-max scaled per image, so their no-motion value is not a
    fixed grey level; most of a face does not move, so the median is close to it (and to the
    strain's floor)."""
    _, h, w = image.shape
    y0, x0 = int(round(box[0] * h)), int(round(box[2] * w))
    y1, x1 = max(int(round(box[1] * h)), y0 + 1), max(int(round(box[3] * w)), x0 + 1)
    out = image.clone()
    out[:, y0:y1, x0:x1] = image.flatten(1).median(dim=1).values[:, None, None]
    return out


def warp(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Rotate, scale, (optionally) mirror and shift ``image`` (C x H x W float) about its centre.

    Output pixel at centred, normalised coordinates p takes the input at
    R(angle)^-1 F (p - d) / scale, where F mirrors x when ``params.flip`` and d is
    ``params.shift``; so an input point q lands at F R(angle) scale q + d (rotation
    counter-clockwise on screen, y pointing down). With ``params.elastic`` the output pixel at p then reads the input at
    that point plus the elastic displacement at p (:func:`elastic_field`, in pixels). Bilinear
    sampling, borders replicated. Only the pixels move; see :func:`flip_motion` for the flow's
    sign.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a C x H x W image, got shape {tuple(image.shape)}")
    _, h, w = image.shape
    a = math.radians(params.angle)
    cos, sin = math.cos(a) / params.scale, math.sin(a) / params.scale
    fx = -1.0 if params.flip else 1.0
    # Output (x, y) -> input (x, y) about the centre, y pointing down, is the inverse
    # M = R^T F / s of the forward map q -> F R s q, R = [[cos, sin], [-sin, cos]] (screen
    # CCW). affine_grid works in coordinates normalised to [-1, 1] per axis, so it takes
    # theta = D M D^-1 with D = diag(2 / w, 2 / h): the off-diagonal terms scale by h/w, w/h.
    # The shift d, as fractions of the side, is 2 d in normalised units; p -> M (p - 2 d).
    m = [[cos * fx, -sin * h / w], [sin * fx * w / h, cos]]
    dx, dy = 2.0 * params.shift[0], 2.0 * params.shift[1]
    theta = torch.tensor(
        [[m[0][0], m[0][1], -(m[0][0] * dx + m[0][1] * dy)],
         [m[1][0], m[1][1], -(m[1][0] * dx + m[1][1] * dy)]], dtype=image.dtype
    )
    grid = F.affine_grid(theta.unsqueeze(0), [1, *image.shape], align_corners=False)
    if params.elastic is not None:  # pixels -> normalised [-1, 1] units: 2 / side
        scale = torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float64)
        grid = grid + (elastic_field(params.elastic, h, w) * scale).to(image.dtype).unsqueeze(0)
    out = F.grid_sample(
        image.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.squeeze(0)


def apply_pair(
    texture: torch.Tensor, motion: torch.Tensor, params: AugmentParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one draw to both images of a clip (3 x H x W each, values in [0, 1])."""
    if texture.shape == motion.shape:  # one sampling pass for both
        texture, motion = warp(torch.cat([texture, motion]), params).split(texture.shape[0])
    else:
        texture, motion = warp(texture, params), warp(motion, params)
    if params.flip:
        motion = flip_motion(motion)
    if params.erase is not None:
        texture, motion = erase(texture, params.erase), erase(motion, params.erase)
    return texture, motion


def mix_batch(
    texture: torch.Tensor,
    motion: torch.Tensor,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup or CutMix of a batch, the same for both modalities (``cfg.mixup``, ``cfg.cutmix``).

    With ``lam ~ Beta(a, a)`` and a random pairing ``perm`` of the batch, mixup gives
    ``lam x + (1 - lam) x[perm]``; CutMix pastes ``x[perm]`` into a box of side
    ``sqrt(1 - lam)`` times the image's, centred uniformly and clipped, and sets ``lam`` to
    the share of the image left unpasted. Texture and motion (B x C x S x S each) get the
    same pairing, ``lam`` and box, so a clip's two images stay registered; the flow of a
    pasted box is the paired clip's own flow.

    Returns ``(texture, motion, perm, lam)``; the loss is ``lam L(y) + (1 - lam) L(y[perm])``.
    With neither enabled the batch is returned unchanged with ``lam = 1``.
    """
    modes = [m for m, a in (("mixup", cfg.mixup), ("cutmix", cfg.cutmix)) if a > 0]
    perm = torch.from_numpy(rng.permutation(texture.shape[0]))
    if not modes:
        return texture, motion, perm, 1.0
    mode = modes[int(rng.integers(len(modes)))]
    a = cfg.mixup if mode == "mixup" else cfg.cutmix
    lam = float(rng.beta(a, a))
    if mode == "mixup":
        def mixed(x: torch.Tensor) -> torch.Tensor:
            return lam * x + (1.0 - lam) * x[perm]

        return mixed(texture), mixed(motion), perm, lam
    h, w = motion.shape[-2:]
    y0, y1, x0, x1 = _cut_box(h, w, lam, rng)
    out = []
    for x in (texture, motion):
        if x.shape[-2:] != (h, w):
            raise ValueError("CutMix needs texture and motion images of the same size")
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        out.append(x)
    return out[0], out[1], perm, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def _cut_box(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's box: sides ``sqrt(1 - lam)`` of the image's, centre uniform, clipped."""
    r = np.sqrt(1.0 - lam)
    ch, cw = int(round(h * r)), int(round(w * r))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return (
        max(cy - ch // 2, 0),
        min(cy + ch - ch // 2, h),
        max(cx - cw // 2, 0),
        min(cx + cw - cw // 2, w),
    )
