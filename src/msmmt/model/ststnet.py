"""STSTNet: the shallow triple-stream CNN of Liong et al. (2019), a baseline for MSMMT.

Liong, Gan, See, Khor and Huang, "Shallow Triple Stream Three-dimensional CNN (STSTNet)
for Micro-expression Recognition", FG 2019 (arXiv:1902.03634). Its input is a 28 x 28 x 3
image of (optical strain, u, v) between onset and apex; here the motion image of each clip
(u, v, strain), whose channel order does not matter to the network. See ``docs/METHOD.md``,
"Baselines".

Three parallel streams, each ``conv 3x3 (same padding) -> ReLU -> max-pool 3x3 stride 3``,
with 3, 5 and 8 channels; their maps (10 x 10 for a 28 x 28 input) are concatenated
(16 channels), average-pooled 2 x 2 (5 x 5) and flattened into one fully connected layer to
the classes: 84 + 140 + 224 + (400 + 1) C parameters, 1651 for three classes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["STREAM_CHANNELS", "STSTNet"]

STREAM_CHANNELS = (3, 5, 8)
"""Output channels of the three convolution streams (the paper's design)."""


class STSTNet(nn.Module):
    """``(B, 3, S, S)`` images -> ``(B, num_classes)`` logits.

    Parameters
    ----------
    num_classes : int
        Outputs of the final layer.
    image_size : int
        Side ``S`` of the input (28 in the paper); fixes the fully connected layer's width
        ``16 * floor(ceil(S / 3) / 2) ** 2``.
    """

    def __init__(self, num_classes: int = 3, image_size: int = 28) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3, ch, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
            )
            for ch in STREAM_CHANNELS
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        side = ((image_size + 2 - 3) // 3 + 1) // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for STSTNet (at least 4)")
        self.fc = nn.Linear(sum(STREAM_CHANNELS) * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.fc(torch.flatten(self.pool(maps), 1))
