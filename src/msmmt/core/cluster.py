"""Run one function over named items, in this process or as Ray tasks, with retries.

Both the LOSO folds (:mod:`msmmt.evaluation.executors`) and the preprocessing batches
(:mod:`msmmt.preprocess.ray_batch`) go through :func:`local_map` / :func:`ray_map`: every
item is attempted up to ``retries + 1`` times; an attempt fails when the task dies (worker
killed, out of memory, node lost: any :class:`ray.exceptions.RayError`) or when
``failed(result)`` returns a message. Both yield every :class:`Attempt` as it ends and
call ``on_start`` as one starts, with the node it runs on (progress, status files).

Ray is an optional dependency (``pip install msmmt[ray]``): it is imported only here,
inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from msmmt.config import ConfigError
from msmmt.core.threads import limit_threads

__all__ = [
    "Attempt",
    "OnStart",
    "cluster_gpus",
    "local_map",
    "ray_map",
    "ray_session",
    "task_resources",
]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Attempt:
    """One try of one item."""

    key: str
    node: str
    number: int
    """1-based attempt number."""
    result: Any = None
    error: str | None = None
    """Why the attempt failed (the task died, or ``failed(result)``); None on success."""
    crashed: bool = False
    """The task itself died (no result came back)."""
    seconds: float = 0.0
    final: bool = True
    """No further attempt of this item follows."""


OnStart = Callable[[str, str, int], None]
"""Called with (key, node, attempt number) when an attempt starts."""


def _no_failure(result: Any) -> str | None:
    return None


def task_resources(device: str, threads: int, gpus_in_cluster: float) -> dict[str, float]:
    """Resources one task declares: ``threads`` CPUs, and one GPU when it trains on CUDA.

    ``device="cuda"`` needs a GPU in the cluster (else the task could never be scheduled:
    an error now instead of a hang); ``"auto"`` takes a GPU when the cluster has one.
    """
    if threads < 1:
        raise ConfigError(f"threads per task must be >= 1, got {threads}")
    if device == "cuda" and gpus_in_cluster < 1:
        raise ConfigError(
            "device=cuda but the Ray cluster has no GPU: start the workers on GPU nodes "
            "(ray start --num-gpus=N) or use --device cpu"
        )
    use_gpu = device == "cuda" or (device == "auto" and gpus_in_cluster >= 1)
    return {"num_cpus": float(threads), "num_gpus": 1.0 if use_gpu else 0.0}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'msmmt[ray]' (or pip install 'ray>=2.9')"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[None]:
    """Connect to the Ray cluster at ``address`` (``auto``, ``HOST:PORT``), or start a local
    one with ``num_cpus`` CPUs, quiet and without dashboard; a session that this call
    started is shut down at the end. An already initialised session is reused as is."""
    ray = _import_ray()
    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:  # "local": a new Ray, even if `ray start` runs one on this machine
        address, kwargs["num_cpus"] = "local", num_cpus
    try:
        ray.init(address=address, log_to_driver=False, **kwargs)
    except ConnectionError as err:
        raise ConfigError(
            f"--address {address}: cannot connect to a Ray cluster ({err}); a cluster with "
            "token authentication (ray start's default) needs RAY_AUTH_MODE=token here"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def cluster_gpus() -> float:
    """GPUs in the connected Ray cluster."""
    return float(_import_ray().cluster_resources().get("GPU", 0.0))


def local_map(
    fn: Callable[[Any], Any],
    items: Mapping[str, Any],
    retries: int,
    on_start: OnStart,
    failed: Callable[[Any], str | None] = _no_failure,
) -> Iterator[Attempt]:
    """``fn(item)`` for every item, one after the other in this process; yields every
    attempt as it ends. Exceptions from ``fn`` propagate (catch them in ``fn``)."""
    node = socket.gethostname()
    for key, item in items.items():
        for number in range(1, retries + 2):
            on_start(key, node, number)
            start = time.perf_counter()
            result = fn(item)
            error = failed(result)
            final = error is None or number > retries
            yield Attempt(
                key, node, number, result, error, False, time.perf_counter() - start, final
            )
            if final:
                break


def _run_task(fn, item, key: str, number: int, threads: int, tracker) -> tuple[Any, str, float]:
    """The body of every Ray task: say where it runs, then ``fn(item)`` on ``threads``."""
    node = f"{socket.gethostname()}:{os.getpid()}"
    tracker.started.remote(key, node, number)
    limit_threads(threads)
    start = time.perf_counter()
    return fn(item), node, time.perf_counter() - start


class _Tracker:
    """A Ray actor (no CPU) that the tasks tell where they started."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], str] = {}

    def started(self, key: str, node: str, number: int) -> None:
        self.seen[key, number] = node

    def snapshot(self) -> dict[tuple[str, int], str]:
        return dict(self.seen)


def ray_map(
    fn: Callable[[Any], Any],
    items: Mapping[str, Any],
    resources: Mapping[str, float],
    retries: int,
    on_start: OnStart,
    failed: Callable[[Any], str | None] = _no_failure,
) -> Iterator[Attempt]:
    """``fn(item)`` for every item as a Ray task declaring ``resources`` (in a session of
    :func:`ray_session`); yields every attempt as it ends, and resubmits a failed one up
    to ``retries`` times. ``on_start`` hears where each attempt started."""
    ray = _import_ray()
    threads = max(1, int(resources.get("num_cpus", 1)))
    task = ray.remote(_run_task).options(max_retries=0, **resources)
    tracker = ray.remote(num_cpus=0)(_Tracker).remote()
    fn_ref = ray.put(fn)
    running: dict[Any, tuple[str, int]] = {}
    reported: set[tuple[str, int]] = set()

    def submit(key: str, number: int) -> None:
        running[task.remote(fn_ref, items[key], key, number, threads, tracker)] = (key, number)

    try:
        for key in items:
            submit(key, 1)
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_SECONDS)
            seen = ray.get(tracker.snapshot.remote())
            for (key, number), node in seen.items():
                if (key, number) not in reported:
                    reported.add((key, number))
                    on_start(key, node, number)
            for ref in done:
                key, number = running.pop(ref)
                reported.add((key, number))
                attempt = _outcome(ray, ref, key, number, seen.get((key, number), "?"), failed)
                attempt = replace(attempt, final=attempt.error is None or number > retries)
                yield attempt
                if not attempt.final:
                    submit(key, number + 1)
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        ray.kill(tracker)


def _outcome(ray, ref, key: str, number: int, node: str, failed) -> Attempt:
    """The attempt whose task ``ref`` ended: its result, or why it failed."""
    try:
        result, node, seconds = ray.get(ref)
    except ray.exceptions.RayError as err:
        return Attempt(key, node, number, None, f"{type(err).__name__}: {err}", True)
    return Attempt(key, node, number, result, failed(result), False, seconds)
