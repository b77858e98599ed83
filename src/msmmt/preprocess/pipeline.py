"""Clip -> (dynamic image, flow/strain image): one clip, and a whole dataset with a cache.

One clip (:func:`process_clip`), frames ``onset..end`` with ``end = max(apex, offset)``:

1. face: landmarks on the onset frame (or the next ones), one similarity transform
   for every frame, ``face_size`` crop (:mod:`msmmt.preprocess.face`);
2. magnify: Eulerian motion magnification of the aligned clip from the onset on,
   the onset being its first frame (:mod:`msmmt.preprocess.magnify`; causal, so the
   onset frame is unchanged);
3. texture: dynamic image of the magnified frames ``onset..offset``
   (:mod:`msmmt.preprocess.dynamic_image`);
4. motion: TV-L1 flow from the magnified onset to the magnified apex, strain,
   the (u, v, |e|) image (:mod:`msmmt.preprocess.flow`);
5. face image: the aligned (not magnified) apex frame, for explanations.

The three images are ``image_size`` squares. Only the frames a requested image
needs are magnified. :func:`preprocess_dataset` runs this over samples, in a
process pool, through the cache of :mod:`msmmt.preprocess.cache`.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.data.records import DatasetError, Sample
from msmmt.io import atomic_path
from msmmt.preprocess import cache
from msmmt.preprocess.dynamic_image import dynamic_image
from msmmt.preprocess.face import AlignedFaces, LandmarksFn, align_faces, face_landmarks
from msmmt.preprocess.flow import motion_image, tvl1_flow
from msmmt.preprocess.landmarks import detect_landmarks
from msmmt.preprocess.magnify import magnify
from msmmt.preprocess.scaling import resize_square

__all__ = [
    "IMAGES",
    "ClipImages",
    "ClipRange",
    "RunSummary",
    "StageClock",
    "clip_range",
    "modality_images",
    "preprocess_dataset",
    "process_clip",
]

log = logging.getLogger(__name__)

IMAGES = ("texture", "motion", "face")
FAILURE_COLUMNS = ("dataset", "subject", "clip", "stage", "error")


@dataclass(frozen=True)
class ClipImages:
    texture: np.ndarray
    """(S, S, 3) uint8 dynamic image of the aligned, magnified clip onset..offset."""
    motion: np.ndarray
    """(S, S, 3) uint8 (u, v, |e|) image of the flow onset -> apex."""
    face: np.ndarray
    """(S, S, 3) uint8 aligned apex frame."""
    info: dict = field(default_factory=dict)
    """Key-frame indices, the frame the landmarks came from, the 68 aligned landmarks
    (in image_size pixels), the eye targets (face_size pixels), milliseconds per stage."""


@dataclass(frozen=True)
class ClipRange:
    """Positions of a clip's key frames; ``end = max(apex, offset)`` is the last one used."""

    onset: int
    apex: int
    offset: int

    @property
    def end(self) -> int:
        return max(self.apex, self.offset)

    def relative(self) -> ClipRange:
        """The same range counted from the onset."""
        return ClipRange(0, self.apex - self.onset, self.offset - self.onset)


def clip_range(
    n_frames: int, onset: int, apex: int | None, offset: int | None = None, clip: str = "clip"
) -> ClipRange:
    """Check and complete key-frame positions (0-based) of a clip of ``n_frames`` frames.

    ``offset`` defaults to the last frame and ``apex`` to the middle of onset..offset.
    An apex after the offset (a known annotation defect) extends the used frames to the apex.
    """
    offset = n_frames - 1 if offset is None else offset
    apex = (onset + offset) // 2 if apex is None else apex
    for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
        if not 0 <= value < n_frames:
            raise DatasetError(
                f"{clip}: {name} index {value} is outside the clip's {n_frames} frames"
            )
    if not onset <= apex or not onset <= offset:
        raise DatasetError(f"{clip}: onset {onset} comes after apex {apex} or offset {offset}")
    return ClipRange(onset, apex, offset)


class StageClock:
    """Times the stages of one clip; ``current`` names the last one entered (for failure reports)."""

    def __init__(self) -> None:
        self.current = "start"
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = name
        start = time.perf_counter()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + 1000 * (time.perf_counter() - start)


def modality_images(
    faces: np.ndarray,
    rng: ClipRange,
    cfg: PreprocessConfig,
    need: Sequence[str] = IMAGES,
    clock: StageClock | None = None,
) -> dict[str, np.ndarray]:
    """The images in ``need`` (texture, motion, face) from aligned faces onset..end.

    ``rng`` is counted from the onset (``faces[0]`` is the onset frame).
    """
    clock = clock or StageClock()
    out: dict[str, np.ndarray] = {}
    if "face" in need:
        with clock("face_image"):
            out["face"] = resize_square(faces[rng.apex], cfg.image_size)
    # Magnify only the frames the requested images read (the filter is causal).
    length = max(
        rng.offset + 1 if "texture" in need else 0, rng.apex + 1 if "motion" in need else 0
    )
    if length == 0:
        return out
    with clock("magnify"):
        clip = faces[:length].astype(np.float32)
        if cfg.magnify:
            clip = magnify(
                clip,
                alpha=cfg.magnify_alpha,
                mode=cfg.magnify_mode,
                lambda_c=cfg.magnify_lambda_c,
                levels=cfg.magnify_levels,
                r1=cfg.magnify_r1,
                r2=cfg.magnify_r2,
            )
    if "texture" in need:
        with clock("texture"):
            out["texture"] = dynamic_image(
                clip[: rng.offset + 1], cfg.dynamic_image, cfg.image_size
            )
    if "motion" in need:
        with clock("flow"):
            flow = tvl1_flow(clip[0], clip[rng.apex])
        with clock("motion"):
            out["motion"] = motion_image(flow, cfg.image_size)
    return out


def _align(
    frames: np.ndarray,
    rng: ClipRange,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn,
    clip: str,
    clock: StageClock,
) -> AlignedFaces:
    """Aligned faces of ``frames[onset..end]`` (landmarks searched from the onset on)."""
    with clock("face"):
        return align_faces(frames[rng.onset : rng.end + 1], cfg, landmarks_fn, clip)


def _info(rng: ClipRange, faces: AlignedFaces, cfg: PreprocessConfig, clock: StageClock) -> dict:
    to_image = cfg.image_size / cfg.face_size
    return {
        "onset": rng.onset,
        "apex": rng.apex,
        "offset": rng.offset,
        "detected_frame": None
        if faces.detected_frame is None
        else rng.onset + faces.detected_frame,
        "landmarks": None if faces.landmarks is None else (faces.landmarks * to_image).tolist(),
        "eye_targets": None if faces.eye_targets is None else faces.eye_targets.tolist(),
        "ms": dict(clock.ms),
    }


def process_clip(
    frames: np.ndarray,
    onset_idx: int,
    apex_idx: int | None,
    cfg: PreprocessConfig,
    landmarks_fn: LandmarksFn = face_landmarks,
    offset_idx: int | None = None,
    clip: str = "clip",
) -> ClipImages:
    """Texture, motion and face images of one clip (T, H, W, 3) uint8 RGB.

    Indices are 0-based positions in ``frames``; ``offset_idx`` defaults to the last
    frame and ``apex_idx=None`` to the middle of onset..offset. Raises DatasetError
    (naming ``clip``) for bad indices or a clip without a detectable face.
    """
    frames = np.asarray(frames)
    rng = clip_range(len(frames), onset_idx, apex_idx, offset_idx, clip)
    clock = StageClock()
    faces = _align(frames, rng, cfg, landmarks_fn, clip, clock)
    images = modality_images(faces.frames, rng.relative(), cfg, IMAGES, clock)
    return ClipImages(**images, info=_info(rng, faces, cfg, clock))


# --------------------------------------------------------------------------- dataset runner


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


def _sample_range(sample: Sample) -> tuple[ClipRange, tuple[int, int, int, int]]:
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
            rng, (onset, apex, offset, end) = _sample_range(sample)
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
                from msmmt.data.readers import load_frames

                frames = load_frames(sample, first=onset, last=end)
            faces = _align(frames, rng.relative(), cfg, face_landmarks, sample.key, clock)
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

    from msmmt.data.readers import write_manifest

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
