"""Preprocessing speed: milliseconds per stage and clips per second, 1 vs 2 workers.

Synthetic clips: the astronaut's face in a 640 x 480 frame, 60 frames, a smooth
bump moving the mouth. Per-stage times come from ``process_clip`` (in this
process, JPEG decoding timed apart); the whole pipeline runs ``preprocess_dataset``
on JPEG folders into a fresh cache three ways: one process with OpenCV on one
thread, one process with OpenCV's threads on every core (TV-L1 is partly parallel
in OpenCV), and two worker processes of one thread each. The 2-worker time includes
starting the processes and loading dlib in each (1-2 s), so few clips favour one
process; ``load_avg`` records how busy the machine was.

    .venv/bin/python benchmarks/bench_preprocess.py [--clips 12] [--frames 60] [--config paper]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record, timeit  # noqa: E402

from msmmt.config import load_config  # noqa: E402
from msmmt.core.keyframes import sample_key_frames  # noqa: E402
from msmmt.data.readers import load_frames, read_clip  # noqa: E402
from msmmt.ops.dynamic_image import dynamic_image  # noqa: E402
from msmmt.ops.face import align_faces  # noqa: E402
from msmmt.preprocess.batch import preprocess_dataset  # noqa: E402
from msmmt.preprocess.clip import process_clip  # noqa: E402


def synthetic_clip(n_frames: int, seed: int) -> np.ndarray:
    """(n_frames, 480, 640, 3) uint8: a face with the mouth moving up to the middle frame."""
    rng = np.random.default_rng(seed)
    face = cv2.resize(data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 200, np.uint8)
    top, left = 40 + rng.integers(0, 40), 120 + rng.integers(0, 80)
    canvas[top : top + 400, left : left + 400] = face
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    mouth = (left + 224 * 400 / 512, top + 148 * 400 / 512)
    bump = np.exp(-((x - mouth[0]) ** 2 + (y - mouth[1]) ** 2) / (2 * 15.0**2))
    profile = np.sin(np.linspace(0, np.pi, n_frames))
    frames = []
    for s in profile:
        shift = (2.0 * s * bump + rng.normal(0, 0.05)).astype(np.float32)
        frames.append(cv2.remap(canvas, x, y + shift, cv2.INTER_LINEAR))
    return np.stack(frames)


def write_clip(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"img{i}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--config", default=None, help="preset or YAML (default: the paper's)")
    args = parser.parse_args()
    cfg = load_config(args.config).preprocess
    settings = f"face {cfg.face_size}, image {cfg.image_size}, DI {cfg.dynamic_image}"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = []
        for i in range(args.clips):
            folder = write_clip(
                root / "clips" / f"sub{i:02d}" / "EP01", synthetic_clip(args.frames, i)
            )
            sample = read_clip(folder, apex=args.frames // 2 + 1)
            samples.append(sample.__class__(**{**sample.__dict__, "subject": f"bench/sub{i:02d}"}))

        stage_ms: dict[str, list[float]] = {}
        for sample in samples:
            start = time.perf_counter()
            frames = load_frames(sample)
            stage_ms.setdefault("load (JPEG decode)", []).append(
                1000 * (time.perf_counter() - start)
            )
            images = process_clip(frames, 0, sample_key_frames(sample).apex, cfg, clip=sample.key)
            for stage, ms in images.info["ms"].items():
                stage_ms.setdefault(stage, []).append(ms)

        rows: list[dict[str, object]] = [
            {"what": f"stage {stage}", "value": float(np.median(ms)), "unit": "ms/clip"}
            for stage, ms in stage_ms.items()
        ]
        faces = align_faces(frames, cfg).frames.astype(np.float32)
        for mode in ("approximate", "ranksvm"):
            seconds = timeit(lambda m=mode: dynamic_image(faces, m, cfg.image_size), repeat=3)
            rows.append(
                {"what": f"dynamic image {mode}", "value": 1000 * seconds, "unit": "ms/clip"}
            )
        # One process with OpenCV on one thread (the plain way), one process with
        # OpenCV's threads on every core (TV-L1 is partly parallel), and a pool of two
        # single-threaded workers (what `--workers 2` does).
        threads = cv2.getNumThreads()
        rate = {}
        for name, workers, cv_threads in (
            ("1 worker, 1 thread", 1, 1),
            (f"1 worker, {threads} OpenCV threads", 1, threads),
            ("2 workers", 2, threads),
        ):
            cv2.setNumThreads(cv_threads)
            summary = preprocess_dataset(
                samples, cfg, root / f"cache-{len(rate)}", workers, progress=False
            )
            assert summary.done == args.clips, summary
            rate[name] = args.clips / summary.seconds
            rows.append({"what": f"pipeline {name}", "value": rate[name], "unit": "clips/s"})
        cv2.setNumThreads(threads)
        first, threaded, pool = rate.values()
        rows.append({"what": "2 workers / 1 worker 1 thread", "value": pool / first, "unit": "ratio"})
        rows.append(
            {"what": "2 workers / 1 worker threaded", "value": pool / threaded, "unit": "ratio"}
        )
        load = os.getloadavg()[0]  # other processes competing for the cores skew the ratio
        for row in rows:
            row.update(
                clips=args.clips,
                frames=args.frames,
                frame_size="640x480",
                settings=settings,
                load_avg=load,
            )
        record("preprocess", rows)


if __name__ == "__main__":
    main()
