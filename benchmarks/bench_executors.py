"""LOSO fold throughput: the Ray executor against the local executor and two shards.

On a small synthetic set (random 48 x 48 image pairs in a precomputed manifest) with a
short real training (the demo preset, few epochs), it runs the same LOSO three ways, each
as fresh ``msmmt loso`` processes, so start-up (Python, torch, Ray) is counted:

* ``local``: one process, one thread, folds one after the other (the default);
* ``ray``: ``--executor ray --workers 2``: a local Ray of 2 CPUs, every fold a task of
  1 thread, 2 folds at once;
* ``shards``: two processes of one thread at once, ``--shard 1/2`` and ``--shard 2/2``.

It reports wall time, folds per minute, the median time of one fold inside its worker,
whether the predictions equal the local run's, and the load average before and after
(the machine may be shared: a busy one slows the parallel modes most).

    .venv/bin/python benchmarks/bench_executors.py
    .venv/bin/python benchmarks/bench_executors.py --subjects 12 --epochs 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402

CLASSES = ("negative", "positive", "surprise")


def write_set(root: Path, subjects: int, clips: int, size: int = 48) -> Path:
    """A precomputed manifest of random texture/flow image pairs, labels cycling."""
    rng = np.random.default_rng(0)
    rows = ["dataset,subject,sample,label,texture_image,flow_image"]
    for s in range(subjects):
        for c in range(clips):
            n = s * clips + c
            for kind in ("tex", "flow"):
                cv2.imwrite(str(root / f"{kind}_{n}.png"), rng.integers(0, 256, (size, size, 3), np.uint8))
            rows.append(f"casme2,casme2/sub{s:02d},clip{c},{CLASSES[n % 3]},tex_{n}.png,flow_{n}.png")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def loso_command(manifest: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "msmmt", "--quiet", "--threads", "1", "--config", "demo",
        "--set", f"train.epochs={epochs}", "loso", "--data", str(manifest), "--out", str(out),
        *extra,
    ]


def run_mode(name: str, manifest: Path, out: Path, epochs: int) -> float:
    """Wall seconds of one way of running the whole LOSO into ``out``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    if name == "shards":
        procs = [
            subprocess.Popen(
                loso_command(manifest, out, epochs, "--shard", f"{i}/2"),
                env=env, stdout=subprocess.DEVNULL,
            )
            for i in (1, 2)
        ]
        codes = [p.wait() for p in procs]
    else:
        extra = ("--executor", "ray", "--workers", "2") if name == "ray" else ()
        command = loso_command(manifest, out, epochs, *extra)
        codes = [subprocess.call(command, env=env, stdout=subprocess.DEVNULL)]
    if any(codes):
        raise SystemExit(f"{name}: msmmt loso exited with {codes}")
    return time.perf_counter() - start


def fold_results(run: Path) -> tuple[dict[str, str], list[float]]:
    folds = sorted((run / "folds").iterdir())
    preds = {d.name: (d / "predictions.csv").read_text() for d in folds}
    seconds = [json.loads((d / "done.json").read_text())["seconds"] for d in folds]
    return preds, seconds


def measure(name: str, manifest: Path, out: Path, epochs: int, round_: int) -> tuple[dict, dict]:
    """One mode's row, and its fold predictions."""
    load_before = os.getloadavg()[0]
    wall = run_mode(name, manifest, out, epochs)
    preds, seconds = fold_results(out)
    row = {
        "round": round_,
        "mode": name,
        "workers": 1 if name == "local" else 2,
        "folds": len(preds),
        "epochs": epochs,
        "wall_s": wall,
        "folds_per_min": 60 * len(preds) / wall,
        "fold_median_s": float(np.median(seconds)),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    return row, preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="Repeat the three modes, in a rotated order each round (a shared machine's load drifts).",
    )
    args = parser.parse_args()
    rows, modes, reference = [], ["local", "ray", "shards"], None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        manifest = write_set(data, args.subjects, args.clips)
        for r in range(1, args.rounds + 1):
            for name in modes[(r - 1) % 3 :] + modes[: (r - 1) % 3]:
                row, preds = measure(name, manifest, Path(tmp) / f"{name}-{r}", args.epochs, r)
                reference = reference or preds
                rows.append({**row, "same_predictions": preds == reference})
    local = {r["round"]: r["wall_s"] for r in rows if r["mode"] == "local"}
    for r in rows:
        r["speedup_vs_local"] = local[r["round"]] / r["wall_s"]
    record("executors", rows)


if __name__ == "__main__":
    main()
