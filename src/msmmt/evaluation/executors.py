"""Executors: how the unfinished folds of a run are run.

:class:`LocalExecutor` runs them one after the other in this process (the default);
:class:`RayExecutor` runs each as a Ray task on a local or remote Ray cluster, declaring
``threads`` CPUs and, when the config trains on CUDA, one GPU. Both call the same
per-fold function (:class:`msmmt.evaluation.runner.FoldJob`), which writes a fold's files
atomically and done.json last, so a run can mix executors and shards, be killed and be
resumed. A failed attempt (an exception, or a task that died: worker killed, out of memory)
is recorded in the fold's error.txt and retried up to ``retries`` times.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from msmmt.core.cluster import (
    Attempt,
    cluster_gpus,
    local_map,
    ray_map,
    ray_session,
    task_resources,
)
from msmmt.evaluation.protocols import Fold

__all__ = ["Executor", "FoldEvents", "FoldRunner", "LocalExecutor", "RayExecutor", "make_executor"]


class FoldRunner(Protocol):
    def __call__(self, fold: Fold) -> str | None: ...
    def record_failure(self, name: str, text: str) -> None: ...


class Executor(Protocol):
    name: ClassVar[str]

    def run(self, job: FoldRunner, folds: Sequence[Fold], events: FoldEvents) -> dict[str, Attempt]:
        """Run ``job`` on every fold; the last attempt of each, by fold name."""
        ...


def _error_of(result: str | None) -> str | None:
    return result


class FoldEvents(Protocol):
    def started(self, key: str, node: str, number: int) -> None: ...
    def finished(self, attempt: Attempt) -> None: ...


def _collect(attempts: Iterator[Attempt], job: FoldRunner, events: FoldEvents) -> dict[str, Attempt]:
    """Report every attempt; write error.txt for one whose task died (no file came back)."""
    last = {}
    for attempt in attempts:
        if attempt.crashed:
            job.record_failure(
                attempt.key, f"attempt {attempt.number} on {attempt.node} died:\n{attempt.error}\n"
            )
        events.finished(attempt)
        last[attempt.key] = attempt
    return last


@dataclass
class LocalExecutor:
    """The folds one after the other in this process."""

    retries: int = 0
    name: ClassVar[str] = "local"

    def run(self, job: FoldRunner, folds: Sequence[Fold], events: FoldEvents) -> dict[str, Attempt]:
        items = {f.name: f for f in folds}
        return _collect(local_map(job, items, self.retries, events.started, _error_of), job, events)


@dataclass
class RayExecutor:
    """Every fold a Ray task of ``threads`` CPUs (+ 1 GPU for CUDA training).

    ``address`` None starts a local Ray with ``workers * threads`` CPUs (so ``workers``
    folds run at once); ``"auto"`` or ``HOST:PORT`` joins a running cluster, whose size
    then decides. The run folder must be on storage that every node sees.
    """

    address: str | None = None
    workers: int = 1
    threads: int = 1
    retries: int = 0
    device: str = "cpu"
    name: ClassVar[str] = "ray"

    def run(self, job: FoldRunner, folds: Sequence[Fold], events: FoldEvents) -> dict[str, Attempt]:
        if not folds:
            return {}
        with ray_session(self.address, self.workers * self.threads):
            resources = task_resources(self.device, self.threads, cluster_gpus())
            items = {f.name: f for f in folds}
            attempts = ray_map(job, items, resources, self.retries, events.started, _error_of)
            return _collect(attempts, job, events)


def make_executor(
    name: str, address: str | None, workers: int, threads: int, retries: int, device: str
) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``); ``address`` only with ray."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if name == "local":
        if address is not None:
            raise ValueError("--address needs --executor ray")
        return LocalExecutor(retries)
    if name == "ray":
        return RayExecutor(address, workers, threads, retries, device)
    raise ValueError(f"executor {name!r}: expected local or ray")
