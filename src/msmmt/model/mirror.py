"""A clip's mirror image: both images flipped left-right, the flow's u negated.

A horizontal flip mirrors the motion field as well as the picture, so the flow's horizontal
component u changes sign. The motion image stores u in channel 0, min-max scaled per image to
[0, 1], ``s = (u - min u) / (max u - min u)``; for ``-u`` the same scaling gives
``(max u - u) / (max u - min u) = 1 - s``. So the mirror maps channel 0 to ``1 - x`` exactly and
leaves v and the strain magnitude unchanged (docs/METHOD.md, "Training" and "Test-time
mirroring"). The training augmentation (:mod:`msmmt.engine.augment`) and the model's test-time
mirroring both use these functions.
"""

from __future__ import annotations

import torch

__all__ = ["flip_motion", "mirror"]


def flip_motion(motion: torch.Tensor) -> torch.Tensor:
    """The sign change of u under a horizontal flip: channel 0 ``x -> 1 - x``.

    ``motion`` is ``(3, H, W)`` or ``(B, 3, H, W)`` with values in [0, 1]; the pixels do not
    move (the caller flips them).
    """
    if motion.ndim not in (3, 4) or motion.shape[-3] != 3:
        raise ValueError(f"motion must be (3, H, W) or (B, 3, H, W), got {tuple(motion.shape)}")
    out = motion.clone()
    out[..., 0, :, :] = 1.0 - out[..., 0, :, :]
    return out


def mirror(
    texture: torch.Tensor | None, motion: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The mirror image of a batch of clips: both images flipped along their last (width)
    axis, the motion image's u channel sign-changed (:func:`flip_motion`); None stays None."""
    flipped = None if texture is None else texture.flip(-1)
    return flipped, None if motion is None else flip_motion(motion.flip(-1))
