"""Micro-expression spotting in long synthetic videos: MEGC F1 per setting, and time.

Videos of :mod:`msmmt.data.long_video` (one synthetic subject; micro-expressions of
0.2-0.5 s and 1-3 px among macro-expressions, head moves, nods and blinks) at 30, 100
and 200 fps are spotted by :func:`msmmt.inference.spot.spot` and scored with the MEGC
protocol (:mod:`msmmt.evaluation.spotting`: IoU >= 0.5, one-to-one).

The threshold (robust z-score) is chosen on a separate *tuning* video (30 fps, 60 s,
seed 100, never one of the scored ones) as the grid value with the best F1, then used
for every scored video. Ablations in the same run: on every video, the face box fixed on
the first frame (``spot.track_seconds=None``) instead of following the face (its cost:
the time of finding the face again every 0.5 s); on 30 fps videos, no head-motion
removal (``spot.head_motion=False``) and no 0.5 s length filter
(``spot.max_seconds=None``); on faster videos, the signal on every frame
(``spot.signal_fps=None``) instead of about 60 per second. ``--drift PX`` makes the
scored videos' heads drift slowly across the frame by PX pixels over the video
(``LongVideoSettings.drift_px``), where the fixed box loses the face.

Time: wall seconds of reading + cropping, the spotting signal (two DIS flows per signal
frame on the 64 px face crop: what bounds it) and the intervals, and the ratio to the
video's own length. Run one setting per command (each takes minutes on 2 cores), e.g.
``.venv/bin/python benchmarks/bench_spot.py --setting 200:60`` (fps:seconds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.config import SpotConfig  # noqa: E402
from msmmt.data.long_video import LongVideoSettings, read_truth, write_long_video  # noqa: E402
from msmmt.evaluation.spotting import score_spotting  # noqa: E402
from msmmt.inference.spot import spot  # noqa: E402

GRID = (10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0)


def _video(
    folder: Path, fps: float, seconds: float, seed: int, drift: float = 0.0
) -> tuple[Path, np.ndarray, float]:
    path = folder / f"fps{fps:g}-seed{seed}.avi"
    start = time.perf_counter()
    truth, _ = write_long_video(path, LongVideoSettings(fps=fps, seconds=seconds, drift_px=drift), seed)
    return path, read_truth(truth), time.perf_counter() - start


def _score(found, truth: np.ndarray, threshold: float):
    kept = [(iv.onset, iv.offset) for iv in found.intervals if iv.score >= threshold]
    return score_spotting(kept, truth)


def tune(folder: Path, seconds: float) -> float:
    path, truth, _ = _video(folder, 30.0, seconds, 100)
    found = spot(path, SpotConfig(threshold=min(GRID)))
    path.unlink()
    f1 = {t: _score(found, truth, t).f1 for t in GRID}
    print("tuning video (30 fps, seed 100): F1 per threshold", {t: round(v, 3) for t, v in f1.items()})
    return max(GRID, key=lambda t: (f1[t], t))


def ablations(fps: float, threshold: float) -> dict[str, SpotConfig]:
    fixed = {"fixed face box": SpotConfig(threshold=threshold, track_seconds=None)}
    if fps <= 30:
        return fixed | {
            "no head-motion removal": SpotConfig(threshold=threshold, head_motion=False),
            "no length filter": SpotConfig(threshold=threshold, max_seconds=None),
        }
    return fixed | {"signal on every frame": SpotConfig(threshold=threshold, signal_fps=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setting", action="append", metavar="FPS:SECONDS", help="default: 30:120 (repeatable)"
    )
    parser.add_argument("--tune-seconds", type=float, default=60.0)
    parser.add_argument("--no-ablation", action="store_true", help="only the default settings")
    parser.add_argument("--drift", type=float, default=0.0, help="head drift (px) in the scored videos")
    args = parser.parse_args()
    settings = [tuple(float(v) for v in s.split(":")) for s in args.setting or ["30:120"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        threshold = tune(folder, args.tune_seconds)
        for fps, seconds in settings:
            path, truth, made = _video(folder, fps, seconds, 1, args.drift)
            variants = {"spot": SpotConfig(threshold=threshold)}
            if not args.no_ablation:
                variants.update(ablations(fps, threshold))
            for name, cfg in variants.items():
                start = time.perf_counter()
                found = spot(path, cfg)
                wall = time.perf_counter() - start
                s = score_spotting([(iv.onset, iv.offset) for iv in found.intervals], truth)
                rows.append(
                    {
                        "variant": name,
                        "fps": fps,
                        "seconds": seconds,
                        "drift_px": args.drift,
                        "frames": found.frames,
                        "threshold": threshold,
                        "micro": s.truth,
                        "tp": s.tp,
                        "fp": s.fp,
                        "fn": s.fn,
                        "precision": s.precision,
                        "recall": s.recall,
                        "f1": s.f1,
                        "spot_s": wall,
                        "read_s": found.seconds["read"],
                        "signal_s": found.seconds["signal"],
                        "intervals_s": found.seconds["intervals"],
                        "x_realtime": wall / seconds,
                        "generate_s": made,
                    }
                )
                print(rows[-1])
            path.unlink()
    record("bench_spot", rows)


if __name__ == "__main__":
    main()
