"""Where and how reproducibly a model runs: device, seeds, deterministic kernels, precision.

:func:`seed_everything` and :func:`deterministic` make a CPU run repeat exactly (same
seed, same threads); :class:`Precision` is mixed precision on CUDA (bf16 where supported,
else fp16 with a gradient scaler) and plain float32 elsewhere.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from msmmt.config import ConfigError

__all__ = ["Precision", "deterministic", "seed_everything", "select_device"]


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was requested but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels inside the block, the previous settings restored afterwards.

    CUDA ops without a deterministic implementation (e.g. the backward of the
    position-embedding interpolation) only warn, so runs on a GPU are reproducible
    up to those ops; on the CPU they are exact.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


@dataclass
class Precision:
    """The forward pass's autocast context and, for fp16, the gradient scaler."""

    autocast: Callable[[], AbstractContextManager]
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device, enabled: bool) -> Precision:
        """bf16 autocast on CUDA where supported, else fp16 + scaler; nothing on the CPU."""
        if device.type != "cuda" or not enabled:
            return cls(nullcontext)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return cls(lambda: torch.autocast("cuda", dtype=dtype), scaler)

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[nn.Parameter],
        grad_clip: float | None,
    ) -> None:
        """One optimiser step on ``loss``: backward (scaled for fp16), gradient-norm
        clipping at ``grad_clip`` (on the unscaled gradients), step."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
