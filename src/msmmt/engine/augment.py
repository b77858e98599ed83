"""Paired geometric augmentation of a clip's texture and motion images (paper, section 4.1).

Both images of a clip get the *same* random rotation (uniform in
[-rotation, rotation] degrees, counter-clockwise as displayed), scale change
(uniform in [scale0, scale1], > 1 enlarges) and horizontal flip, so the two
modalities stay registered.

A horizontal flip mirrors the motion field as well as the picture: the flow's
horizontal component u changes sign. The motion image stores u in channel 0,
min-max scaled per image to [0, 1], s = (u - min u) / (max u - min u); for -u
the same scaling gives (max u - u) / (max u - min u) = 1 - s. So a flip maps
channel 0 to 1 - x exactly, and leaves v and the strain magnitude unchanged.
(A rotation would also turn the flow vectors by the angle, but per-image
min-max scaling has discarded the offsets of u and v, so the vectors cannot be
rotated back; like the paper we only move the pixels, and keep the angle small.)

The functions are pure: tensors in, tensors out, randomness only through an
explicit :class:`torch.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from msmmt.config import AugmentConfig

__all__ = ["AugmentParams", "apply_pair", "flip_motion", "random_params", "warp"]


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: angle in degrees, scale factor, flip or not."""

    angle: float = 0.0
    scale: float = 1.0
    flip: bool = False


def random_params(cfg: AugmentConfig, generator: torch.Generator) -> AugmentParams:
    """Draw angle ~ U[-rotation, rotation], scale ~ U[scale0, scale1], flip ~ Bernoulli(1/2)."""
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    lo, hi = cfg.scale
    return AugmentParams(
        angle=(2.0 * u[0] - 1.0) * cfg.rotation,
        scale=lo + (hi - lo) * u[1],
        flip=bool(cfg.flip and u[2] < 0.5),
    )


def warp(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Rotate, scale and (optionally) mirror ``image`` (C x H x W float) about its centre.

    Output pixel at centred, normalised coordinates p takes the input at
    R(angle)^-1 F p / scale, where F mirrors x when ``params.flip``; so an input
    point q lands at F R(angle) scale q (rotation counter-clockwise on screen,
    y pointing down). Bilinear sampling, borders replicated. Only the pixels
    move; see :func:`flip_motion` for the flow's sign.
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
    theta = torch.tensor(
        [[cos * fx, -sin * h / w, 0.0], [sin * fx * w / h, cos, 0.0]], dtype=image.dtype
    )
    grid = F.affine_grid(theta.unsqueeze(0), [1, *image.shape], align_corners=False)
    out = F.grid_sample(
        image.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.squeeze(0)


def flip_motion(motion: torch.Tensor) -> torch.Tensor:
    """The sign change of u under a horizontal flip: channel 0 x -> 1 - x (values in [0, 1])."""
    out = motion.clone()
    out[0] = 1.0 - out[0]
    return out


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
    return texture, motion
