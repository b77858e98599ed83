"""Preprocess a whole dataset: every sample through :func:`~msmmt.preprocess.clip.process_clip`,
in a process pool, through the cache of :mod:`msmmt.preprocess.cache`; a failing clip (or a
sheet row the reader rejected) is recorded in ``failures.csv`` and the others go on; the
result is ``manifest.csv`` and its metadata ``manifest.json``. Workers exit when their
parent dies (killed or not), and temporary files of killed runs are removed on the next.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from msmmt.config import ConfigError, PreprocessConfig
from msmmt.core.io import atomic_path, file_digest, remove_stale_temporaries
from msmmt.core.keyframes import KeyFrames, sample_key_frames
from msmmt.core.records import RowProblem, Sample
from msmmt.data.readers import load_frames, write_manifest
from msmmt.ops.landmarks import detect_landmarks
from msmmt.preprocess import cache
from msmmt.preprocess.clip import IMAGES, StageClock, align_clip, estimate_apex, modality_images

__all__ = ["RunSummary", "input_fingerprint", "preprocess_dataset", "sample_range"]

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ("dataset", "subject", "clip", "stage", "error")

ClipMap = Callable[[Callable[[Sample], "_Outcome"], list[Sample]], Iterable[tuple[int, object]]]
"""Runs the per-clip function over clips elsewhere (see ``map_clips``)."""

PARENT_POLL_SECONDS = 0.5
"""How often a worker checks that the process that started it is still alive."""


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
    apex: int | None = None
    """The apex frame number the images were made with."""
    apex_source: str = ""
    """How that apex was obtained (:data:`msmmt.data.readers.precomputed.APEX_SOURCES`)."""


def sample_range(sample: Sample) -> tuple[KeyFrames, tuple[int, int, int, int]]:
    """Key frames of ``sample`` as positions (from the clip's first frame) and frame numbers
    (onset, apex, offset and the last frame used, which is the offset)."""
    marks = sample_key_frames(sample)
    numbers = sample.frame_numbers
    onset, apex, offset = (numbers[i] for i in (marks.onset, marks.apex, marks.offset))
    return marks, (onset, apex, offset, offset)


def input_fingerprint(sample: Sample, marks: KeyFrames) -> str:
    """Fingerprint of the files the clip's entries are made from (frames onset..offset, or the video)."""
    files = sample.frames[marks.onset : marks.offset + 1] if sample.frames else (sample.video,)
    return file_digest([f for f in files if f is not None])


def _process_sample(
    sample: Sample, cfg: PreprocessConfig, cache_dir: Path, compute: bool = True
) -> _Outcome | None:
    """Compute what is missing from the cache for one sample; failures become an outcome.

    ``compute=False`` only looks: None means there is work to do. A sample whose
    annotation has no apex (``apex_estimated``) gets the peak of its facial motion
    (:func:`~msmmt.preprocess.clip.estimate_apex`, from the cached aligned faces).
    """
    clock = StageClock()
    try:
        with clock("frames"):
            marks, (onset, apex, offset, end) = sample_range(sample)
            inputs = input_fingerprint(sample, marks)
        folder = cache.clip_folder(cache_dir, sample.dataset, sample.subject, sample.clip)
        entries = cache.clip_entries(folder, cfg, onset, apex, offset, end, inputs)
        missing = [name for name in IMAGES if not entries.image(name).is_file()]
        source = "motion" if sample.apex_estimated else sample.extra.get("apex_source", "annotated")
        if not missing and not sample.apex_estimated:
            return _Outcome("skipped", entries.texture, entries.motion, apex=apex, apex_source=source)
        if not compute:
            return None
        faces = cache.load_faces(entries.faces)
        if faces is None:
            with clock("load"):
                frames = load_frames(sample, first=onset, last=end)
            faces = align_clip(frames, marks.relative(), cfg, None, sample.key, clock)
            with clock("write"):
                cache.save_faces(entries.faces, faces)
        if sample.apex_estimated:
            with clock("estimate"):
                marks, _ = estimate_apex(faces, marks)
            log.info(
                "%s: apex not annotated; frame %d estimated from the facial motion (in place of "
                "the middle frame %d)", sample.key, sample.frame_numbers[marks.apex], apex
            )
            apex = sample.frame_numbers[marks.apex]
            entries = cache.clip_entries(folder, cfg, onset, apex, offset, end, inputs)
            missing = [name for name in IMAGES if not entries.image(name).is_file()]
            if not missing:
                return _Outcome("skipped", entries.texture, entries.motion, apex=apex, apex_source=source)
        images = modality_images(faces.frames, marks.relative(), cfg, missing, clock)
        with clock("write"):
            for name, image in images.items():
                cache.write_image(entries.image(name), image)
        return _Outcome("done", entries.texture, entries.motion, apex=apex, apex_source=source)
    except Exception as err:  # one bad clip must not stop the run
        log.debug("%s failed in stage %s", sample.key, clock.current, exc_info=True)
        return _Outcome("failed", stage=clock.current, error=f"{type(err).__name__}: {err}")


def _exit_with_parent(parent: int) -> None:
    """Poll until the process ``parent`` is no longer this process's parent, then exit.

    A pool worker whose parent was killed (SIGKILL runs no clean-up) would otherwise
    finish its clip and wait on the task queue for ever, and keep the resource
    tracker alive with it.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    """Pool initialiser: exit with the parent, limit OpenCV's threads, load dlib's models once."""
    import cv2

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    cv2.setNumThreads(threads)
    detect_landmarks(np.zeros((16, 16), np.uint8))


def _outcomes(
    samples: Sequence[Sample],
    cfg: PreprocessConfig,
    cache_dir: Path,
    workers: int,
    map_clips: ClipMap | None = None,
) -> Iterator[tuple[int, _Outcome]]:
    """Outcome of every sample: cached ones first (checked here), then the computed ones."""
    todo = []
    for i, sample in enumerate(samples):
        outcome = _process_sample(sample, cfg, cache_dir, compute=False)
        if outcome is None:
            todo.append(i)
        else:
            yield i, outcome
    if map_clips is not None and todo:
        work = partial(_process_sample, cfg=cfg, cache_dir=cache_dir)
        for j, outcome in map_clips(work, [samples[i] for i in todo]):
            ok = isinstance(outcome, _Outcome)
            yield todo[j], outcome if ok else _Outcome("failed", stage="task", error=str(outcome))
        return
    workers = min(workers, len(todo))
    if workers <= 1:
        for i in todo:
            yield i, _process_sample(samples[i], cfg, cache_dir)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        workers, multiprocessing.get_context("spawn"), _init_worker, (threads, os.getpid())
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


def _made(sample: Sample, outcome: _Outcome) -> Sample:
    """``sample`` with its images and the apex they were made with (and its source)."""
    return replace(
        sample,
        texture_image=outcome.texture,
        motion_image=outcome.motion,
        apex=outcome.apex,
        apex_estimated=outcome.apex_source != "annotated",
        extra={**sample.extra, "apex_source": outcome.apex_source},
    )


def preprocess_dataset(
    samples: Sequence[Sample],
    cfg: PreprocessConfig,
    cache_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
    map_clips: ClipMap | None = None,
    rejected: Sequence[RowProblem] = (),
) -> RunSummary:
    """Preprocess ``samples`` into ``cache_dir`` and write its manifest and failure list.

    Clips already in the cache (for these settings and input files) are skipped; a clip
    that fails is recorded in ``failures.csv`` (dataset, subject, clip, stage, error)
    and the run goes on; so are the ``rejected`` rows of the reader (stage ``read``).
    ``manifest.csv`` lists every clip whose images exist, in sample order, with the apex
    its images were made with and how it was obtained (``apex``, ``apex_source``:
    annotated, or estimated from the facial motion for a clip without one), and
    ``manifest.json`` the settings that made it. ``workers > 1`` runs clips in that
    many processes (dlib's models are loaded once per process). ``map_clips(work,
    samples)``, when given, runs the clips to compute instead (e.g.
    :class:`msmmt.preprocess.ray_batch.RayClipMap`: batches as Ray tasks), yielding
    ``(position, outcome or failure message)``.
    """
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for path in remove_stale_temporaries(cache_dir):
        log.info("removed %s, left by a killed run", path)
    try:
        previous = cache.read_metadata(cache_dir)
    except ConfigError:
        previous = None
    start = time.perf_counter()
    outcomes: dict[int, _Outcome] = {}
    bar = tqdm(total=len(samples), desc="preprocess", unit="clip", disable=not progress)
    try:
        for i, outcome in _outcomes(samples, cfg, cache_dir, workers, map_clips):
            outcomes[i] = outcome
            bar.update()
            if outcome.status == "failed":
                bar.write(f"failed: {samples[i].key} [{outcome.stage}] {outcome.error}")
    finally:
        bar.close()
    counts = {
        s: sum(o.status == s for o in outcomes.values()) for s in ("done", "skipped", "failed")
    }
    ok = [_made(samples[i], o) for i, o in sorted(outcomes.items()) if o.status != "failed"]
    failures = [(r.dataset, r.subject, r.clip, "read", r.error) for r in rejected] + [
        (samples[i].dataset, samples[i].subject, samples[i].clip, o.stage, o.error)
        for i, o in sorted(outcomes.items())
        if o.status == "failed"
    ]
    manifest = write_manifest(ok, cache_dir / "manifest.csv")
    envs = cache.cache_environments(cache_dir, previous, counts["done"] > 0, counts["skipped"] > 0)
    cache.write_metadata(manifest, cfg, envs)
    failures_path = cache_dir / "failures.csv"
    _write_failures(failures_path, failures)
    summary = RunSummary(
        counts["done"],
        counts["skipped"],
        counts["failed"] + len(rejected),
        time.perf_counter() - start,
        manifest,
        failures_path,
    )
    log.debug("preprocess: %s", summary)
    return summary
