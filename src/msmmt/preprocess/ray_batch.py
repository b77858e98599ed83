"""Preprocessing on Ray: the clips still to compute, in batches, each batch a Ray task.

:class:`RayClipMap` is the ``map_clips`` of :func:`msmmt.preprocess.batch.preprocess_dataset`:
it runs the per-clip function of :mod:`msmmt.preprocess.batch` (cache lookup, alignment,
magnification, the two images, all written atomically to the cache) over batches of
``batch_size`` clips as Ray tasks of ``threads`` CPUs. A clip's own failure is its outcome,
as in a local run; a batch whose task died (worker killed, out of memory) is retried up
to ``retries`` times, then each of its clips is reported as failed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from msmmt.core.cluster import ray_map, ray_session, task_resources

__all__ = ["RayClipMap"]


@dataclass(frozen=True)
class _Batch:
    work: Callable[[Any], Any]

    def __call__(self, chunk: Sequence[Any]) -> list[Any]:
        return [self.work(item) for item in chunk]


def _ignore(key: str, node: str, number: int) -> None:
    pass


@dataclass(frozen=True)
class RayClipMap:
    """``work`` over clips as Ray tasks; yields ``(position, outcome)`` as batches end,
    or ``(position, "reason")`` for each clip of a batch whose task kept dying."""

    address: str | None = None
    workers: int = 2
    threads: int = 1
    retries: int = 0
    batch_size: int = 4

    def __call__(self, work: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        starts = range(0, len(items), self.batch_size)
        batches = {f"batch{s}": list(items[s : s + self.batch_size]) for s in starts}
        with ray_session(self.address, self.workers * self.threads):
            resources = task_resources("cpu", self.threads, 0.0)
            for attempt in ray_map(_Batch(work), batches, resources, self.retries, _ignore):
                if not attempt.final:
                    continue
                first = int(attempt.key.removeprefix("batch"))
                n = len(batches[attempt.key])
                results = attempt.result if attempt.error is None else [attempt.error] * n
                yield from enumerate(results, start=first)
