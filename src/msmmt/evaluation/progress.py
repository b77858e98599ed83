"""Progress of a fold run, in the terminal and in the run folder.

``RUN/status.csv`` has one row per selected fold (state pending / running / retrying /
done / failed, the node and process it ran on, attempt, seconds, error) and
``RUN/progress.json`` the counts; both are rewritten atomically at every change, so a
long run on a cluster can be watched with ``cat`` or ``watch``. Shards of one run
write their own ``status.shard-I-of-N.csv`` / ``progress.shard-I-of-N.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from msmmt.core.cluster import Attempt
from msmmt.core.io import atomic_write_json, atomic_write_text

__all__ = ["STATES", "FoldMonitor", "status_paths"]

STATES = ("pending", "running", "retrying", "done", "failed")
COLUMNS = ("fold", "state", "node", "attempt", "seconds", "error")


def status_paths(out_dir: Path, shard: str | None) -> tuple[Path, Path]:
    """``(status.csv, progress.json)`` of a run, or of one shard of it."""
    suffix = "" if shard is None else ".shard-{}-of-{}".format(*shard.replace(" ", "").split("/"))
    return out_dir / f"status{suffix}.csv", out_dir / f"progress{suffix}.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FoldMonitor:
    """:class:`msmmt.evaluation.executors.FoldEvents`: status files and a progress bar."""

    def __init__(
        self,
        out_dir: Path,
        selected: Sequence[str],
        done: Sequence[str],
        executor: str,
        shard: str | None = None,
        progress: bool = True,
    ) -> None:
        self.paths = status_paths(Path(out_dir), shard)
        self.meta = {"executor": executor, "shard": shard, "started": _now()}
        finished = set(done)
        self.rows = {
            name: dict.fromkeys(COLUMNS, "") | {"fold": name, "state": "pending"}
            for name in selected
        }
        for name in finished:
            self.rows[name]["state"] = "done"
        self.bar = tqdm(
            total=len(selected), initial=len(finished), desc="folds", unit="fold",
            disable=not progress,
        )
        self._write()

    def __enter__(self) -> FoldMonitor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """On an interruption the folds that were running are pending again."""
        if exc_type is not None:
            for row in self.rows.values():
                if row["state"] in ("running", "retrying"):
                    row["state"] = "pending"
            self._write()
        self.bar.close()

    def counts(self) -> dict[str, int]:
        states = [r["state"] for r in self.rows.values()]
        return {s: states.count(s) for s in STATES}

    def started(self, key: str, node: str, number: int) -> None:
        self.rows[key].update(state="running", node=node, attempt=number, seconds="", error="")
        self._write()

    def finished(self, attempt: Attempt) -> None:
        row = self.rows[attempt.key]
        state = "done" if attempt.error is None else ("failed" if attempt.final else "retrying")
        first_line = (attempt.error or "").splitlines()[0] if attempt.error else ""
        row.update(
            state=state, node=attempt.node, attempt=attempt.number,
            seconds=round(attempt.seconds, 2), error=first_line,
        )
        if state == "done":
            self.bar.update()
        if self.bar.disable is False:
            self.bar.write(
                f"{state:8s} {attempt.key} on {attempt.node} (attempt {attempt.number}, "
                f"{attempt.seconds:.1f} s){': ' + first_line if first_line else ''}"
            )
        self._write()

    def _write(self) -> None:
        counts = self.counts()
        self.bar.set_postfix(running=counts["running"], failed=counts["failed"], refresh=False)
        table = pd.DataFrame(list(self.rows.values()), columns=list(COLUMNS))
        atomic_write_text(self.paths[0], table.to_csv(index=False))
        atomic_write_json(
            self.paths[1], {**self.meta, "updated": _now(), "total": len(self.rows), **counts}
        )
