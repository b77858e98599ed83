"""The per-epoch training history and its CSV file."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from msmmt.core.io import atomic_write_text

__all__ = ["HISTORY_COLUMNS", "HistoryWriter", "history_csv"]

HISTORY_COLUMNS = (
    "member",
    "epoch",
    "lr",
    "train_loss",
    "train_ce",
    "train_con",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_uf1",
)
"""Columns of a history row, in file order (``val_*`` only with a validation set, ``member``
only for a seed ensemble's members)."""


def history_csv(rows: list[dict[str, float]]) -> str:
    """The rows as CSV text, columns in :data:`HISTORY_COLUMNS` order."""
    columns = [c for c in HISTORY_COLUMNS if rows and c in rows[0]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class HistoryWriter:
    """Collects one row per epoch and, with a folder, rewrites ``folder/history.csv``
    (atomically) after each, so an interrupted run leaves the epochs it finished.
    ``on_row``, when given, receives every row as it comes (e.g. live TensorBoard logs)."""

    def __init__(
        self,
        folder: str | Path | None = None,
        on_row: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        self.path = None if folder is None else Path(folder) / "history.csv"
        self.rows: list[dict[str, float]] = []
        self.on_row = on_row

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        if self.path is not None:
            atomic_write_text(self.path, history_csv(self.rows))
        if self.on_row is not None:
            self.on_row(row)
