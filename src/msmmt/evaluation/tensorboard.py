"""Per-fold TensorBoard logs of a run (optional extra: ``pip install 'msmmt[tensorboard]'``).

:class:`TensorBoardFitPredict` wraps a ``fit_predict``: when a fold's training returns,
its history (one row per epoch) is written as TensorBoard scalars to
``RUN/tensorboard/<fold>/``, step = epoch, tags grouped by quantity (``loss/train``,
``loss/val``, ``acc/train``, ``uf1/val``, ``lr``, ...). Nothing else in the run folder
changes. The events are written at the end of each fold (not epoch by epoch: the trainer
has no per-epoch callback), so ``tensorboard --logdir RUN/tensorboard`` shows every
finished fold while the run goes on.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msmmt.config import Config
from msmmt.core.records import Sample
from msmmt.evaluation.runner import FitPredict, FoldOutput

__all__ = ["TENSORBOARD_DIR", "TensorBoardFitPredict", "scalar_tag", "write_history"]

TENSORBOARD_DIR = "tensorboard"


def scalar_tag(column: str) -> str:
    """``train_loss`` -> ``loss/train``, ``val_uf1`` -> ``uf1/val``; others unchanged."""
    split, _, quantity = column.partition("_")
    return f"{quantity}/{split}" if split in ("train", "val") and quantity else column


def write_history(log_dir: Path, history: list[dict[str, Any]]) -> None:
    """Every numeric column but ``epoch`` of every history row, at step = epoch."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch is there: the tensorboard package is not
        raise ImportError("TensorBoard logs need: pip install 'msmmt[tensorboard]'") from None

    shutil.rmtree(log_dir, ignore_errors=True)  # an earlier attempt of this fold
    with SummaryWriter(str(log_dir)) as writer:
        for i, row in enumerate(history, start=1):
            step = int(row.get("epoch", i))
            for column, value in row.items():
                if column != "epoch" and isinstance(value, int | float):
                    writer.add_scalar(scalar_tag(column), float(value), step)


@dataclass(frozen=True)
class TensorBoardFitPredict:
    """``fit_predict`` that also writes the fold's history to ``log_root/<fold>``."""

    fit_predict: FitPredict
    log_root: Path

    def __call__(
        self, cfg: Config, train: list[Sample], test: list[Sample], fold_dir: Path
    ) -> FoldOutput:
        output = self.fit_predict(cfg, train, test, fold_dir)
        write_history(self.log_root / fold_dir.name, output.history)
        return output
