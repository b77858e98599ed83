"""Per-fold TensorBoard logs of a run (optional extra: ``pip install 'msmmt[tensorboard]'``).

:class:`TensorBoardFitPredict` wraps a ``fit_predict`` that accepts an ``on_epoch``
callback (:func:`msmmt.evaluation.fit_predict.train_and_predict`, the baselines): each
epoch's history row is written, as soon as the epoch is done, as TensorBoard scalars to
``RUN/tensorboard/<fold>/``, step = epoch, tags grouped by quantity (``loss/train``,
``loss/val``, ``acc/train``, ``uf1/val``, ``lr``, ...), and flushed, so
``tensorboard --logdir RUN/tensorboard`` follows a long run live. Nothing else in the
run folder changes.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msmmt.config import Config
from msmmt.core.records import Sample
from msmmt.evaluation.runner import FitPredict, FoldOutput

__all__ = ["TENSORBOARD_DIR", "TensorBoardFitPredict", "scalar_tag", "write_row"]

TENSORBOARD_DIR = "tensorboard"


def scalar_tag(column: str) -> str:
    """``train_loss`` -> ``loss/train``, ``val_uf1`` -> ``uf1/val``; others unchanged."""
    split, _, quantity = column.partition("_")
    return f"{quantity}/{split}" if split in ("train", "val") and quantity else column


def _summary_writer(log_dir: Path):
    """A fresh TensorBoard writer for ``log_dir`` (an earlier attempt's events removed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch is there: the tensorboard package is not
        raise ImportError("TensorBoard logs need: pip install 'msmmt[tensorboard]'") from None

    shutil.rmtree(log_dir, ignore_errors=True)
    return SummaryWriter(str(log_dir))


def write_row(writer, row: dict[str, Any]) -> None:
    """Every numeric column but ``epoch`` of one history row, at step = epoch; flushed.
    A seed ensemble member's row (``member`` k) goes to tags ending ``/member<k>``."""
    step = int(row["epoch"])
    suffix = f"/member{int(row['member'])}" if "member" in row else ""
    for column, value in row.items():
        if column not in ("epoch", "member") and isinstance(value, int | float):
            writer.add_scalar(scalar_tag(column) + suffix, float(value), step)
    writer.flush()


@dataclass(frozen=True)
class TensorBoardFitPredict:
    """``fit_predict`` that also writes the fold's history, epoch by epoch, to ``log_root/<fold>``."""

    fit_predict: FitPredict
    log_root: Path

    def __call__(
        self, cfg: Config, train: list[Sample], test: list[Sample], fold_dir: Path
    ) -> FoldOutput:
        with _summary_writer(self.log_root / fold_dir.name) as writer:
            return self.fit_predict(
                cfg, train, test, fold_dir, on_epoch=functools.partial(write_row, writer)
            )
