"""Preprocess a whole dataset: every sample through :func:`~msmmt.preprocess.clip.process_clip`,
in a process pool, through the cache of :mod:`msmmt.preprocess.cache`; a failing clip is
recorded in ``failures.csv`` and the others go on; the result is ``manifest.csv``.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.io import atomic_path
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers import load_frames, write_manifest
from msmmt.ops.face import face_landmarks
from msmmt.ops.landmarks import detect_landmarks
from msmmt.preprocess import cache
from msmmt.preprocess.clip import (
    IMAGES,
    ClipRange,
    StageClock,
    align_clip,
    clip_range,
    modality_images,
)

__all__ = ["RunSummary", "preprocess_dataset", "sample_range"]

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ("dataset", "subject", "clip", "stage", "error")



@dataclass(frozen=True)
class RunSummary:
    done: int
    """Clips computed (fully or partly) in this run."""
    skipped: int
    """Clips whose images were all in the cache already."""
    failed: int
    seconds: float
    manifest: Path
    failures: Path

    def __str__(self) -> str:
        return (
            f"{self.done} done, {self.skipped} skipped (cached), {self.failed} failed "
            f"in {self.seconds:.1f} s; manifest {self.manifest}"
            + (f"; failures in {self.failures}" if self.failed else "")
        )


@dataclass(frozen=True)
class _Outcome:
    status: str  # done | skipped | failed
    texture: Path | None = None
    motion: Path | None = None
    stage: str = ""
    error: str = ""


def sample_range(sample: Sample) -> tuple[ClipRange, tuple[int, int, int, int]]:
    """Key frames of ``sample`` as positions (from the clip's first frame) and frame numbers."""
    numbers = sample.frame_numbers
    if not numbers:
        raise DatasetError(f"{sample.key}: the sample has no frames to preprocess")
    index = {
        name: None if value is None else sample.frame_index(value)
        for name, value in (
            ("onset", sample.onset),
            ("apex", sample.apex),
            ("offset", sample.offset),
        )
    }
    rng = clip_range(len(numbers), index["onset"] or 0, index["apex"], index["offset"], sample.key)
    return rng, (numbers[rng.onset], numbers[rng.apex], numbers[rng.offset], numbers[rng.end])


def _process_sample(
    sample: Sample, cfg: PreprocessConfig, cache_dir: Path, compute: bool = True
) -> _Outcome | None:
    """Compute what is missing from the cache for one sample; failures become an outcome.

    ``compute=False`` only looks: None means there is work to do.
    """
    clock = StageClock()
    try:
        with clock("frames"):
            rng, (onset, apex, offset, end) = sample_range(sample)
        folder = cache.clip_folder(cache_dir, sample.dataset, sample.subject, sample.clip)
        entries = cache.clip_entries(folder, cfg, onset, apex, offset, end)
        missing = [name for name in IMAGES if not entries.image(name).is_file()]
        if not missing:
            return _Outcome("skipped", entries.texture, entries.motion)
        if not compute:
            return None
        faces = cache.load_faces(entries.faces)
        if faces is None:
            with clock("load"):
                frames = load_frames(sample, first=onset, last=end)
            faces = align_clip(frames, rng.relative(), cfg, face_landmarks, sample.key, clock)
            with clock("write"):
                cache.save_faces(entries.faces, faces)
        images = modality_images(faces.frames, rng.relative(), cfg, missing, clock)
        with clock("write"):
            for name, image in images.items():
                cache.write_image(entries.image(name), image)
        return _Outcome("done", entries.texture, entries.motion)
    except Exception as err:  # one bad clip must not stop the run
        log.debug("%s failed in stage %s", sample.key, clock.current, exc_info=True)
        return _Outcome("failed", stage=clock.current, error=f"{type(err).__name__}: {err}")


def _init_worker(threads: int) -> None:
    """Pool initialiser: limit OpenCV's threads and load dlib's models once per worker."""
    import cv2

    cv2.setNumThreads(threads)
    detect_landmarks(np.zeros((16, 16), np.uint8))


def _outcomes(
    samples: Sequence[Sample], cfg: PreprocessConfig, cache_dir: Path, workers: int
) -> Iterator[tuple[int, _Outcome]]:
    """Outcome of every sample: cached ones first (checked here), then the computed ones."""
    todo = []
    for i, sample in enumerate(samples):
        outcome = _process_sample(sample, cfg, cache_dir, compute=False)
        if outcome is None:
            todo.append(i)
        else:
            yield i, outcome
    workers = min(workers, len(todo))
    if workers <= 1:
        for i in todo:
            yield i, _process_sample(samples[i], cfg, cache_dir)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        workers, multiprocessing.get_context("spawn"), _init_worker, (threads,)
    ) as pool:
        futures = {pool.submit(_process_sample, samples[i], cfg, cache_dir): i for i in todo}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _write_failures(path: Path, rows: list[tuple[str, ...]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(FAILURE_COLUMNS)
        writer.writerows(rows)


def preprocess_dataset(
    samples: Sequence[Sample],
    cfg: PreprocessConfig,
    cache_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> RunSummary:
    """Preprocess ``samples`` into ``cache_dir`` and write its manifest and failure list.

    Clips already in the cache (for these settings) are skipped; a clip that fails is
    recorded in ``failures.csv`` (dataset, subject, clip, stage, error) and the run
    goes on. ``manifest.csv`` lists every clip whose images exist, in sample order.
    ``workers > 1`` runs clips in that many processes (dlib's models are loaded once
    per process).
    """
    from tqdm.auto import tqdm


    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes: dict[int, _Outcome] = {}
    bar = tqdm(total=len(samples), desc="preprocess", unit="clip", disable=not progress)
    try:
        for i, outcome in _outcomes(samples, cfg, cache_dir, workers):
            outcomes[i] = outcome
            bar.update()
            if outcome.status == "failed":
                bar.write(f"failed: {samples[i].key} [{outcome.stage}] {outcome.error}")
    finally:
        bar.close()
    counts = {
        s: sum(o.status == s for o in outcomes.values()) for s in ("done", "skipped", "failed")
    }
    ok = [
        replace(samples[i], texture_image=o.texture, motion_image=o.motion)
        for i, o in sorted(outcomes.items())
        if o.status != "failed"
    ]
    failures = [
        (samples[i].dataset, samples[i].subject, samples[i].clip, o.stage, o.error)
        for i, o in sorted(outcomes.items())
        if o.status == "failed"
    ]
    manifest = write_manifest(ok, cache_dir / "manifest.csv")
    failures_path = cache_dir / "failures.csv"
    _write_failures(failures_path, failures)
    summary = RunSummary(
        counts["done"],
        counts["skipped"],
        counts["failed"],
        time.perf_counter() - start,
        manifest,
        failures_path,
    )
    log.debug("preprocess: %s", summary)
    return summary
