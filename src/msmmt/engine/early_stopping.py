"""Early stopping on a validation score, keeping the best epoch's weights."""

from __future__ import annotations

import math

from torch import nn

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Tracks the best epoch by a score tuple (greater is better, compared in order, e.g.
    ``(uf1, -loss)``: UF1, ties broken by the lower loss) and holds a CPU copy of that
    epoch's weights. :attr:`should_stop` once ``patience`` epochs in a row did not improve.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best: tuple[float, ...] = (-math.inf, -math.inf)
        self.best_epoch: int | None = None
        self.stale = 0
        self._state: dict | None = None

    def update(self, epoch: int, score: tuple[float, ...], model: nn.Module) -> bool:
        """Record ``epoch``'s ``score``; keep the weights if it is the best so far."""
        if score > self.best:
            self.best, self.best_epoch, self.stale = score, epoch, 0
            self._state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.stale >= self.patience

    def restore(self, model: nn.Module) -> int | None:
        """Load the best epoch's weights into ``model``; that epoch (None if none improved)."""
        if self._state is not None:
            model.load_state_dict(self._state)
        return self.best_epoch
