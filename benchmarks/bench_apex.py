"""Apex estimation within a clip: error in frames against the synthetic clips' true marks.

A synthetic set (``msmmt synth``'s generator: clips of 20-60 motion frames plus 0-4
neutral frames at each end, peak displacement 0.5-3 px, head drift, flicker, noise) is
written to a temporary folder; each clip is aligned as preprocessing does and its apex
estimated by :func:`msmmt.ops.motion_signal.clip_key_frames`. Compared in the same run:

- ``middle``: the middle frame of the clip (what msmmt assumed before);
- ``motion``: the estimate;
- ``motion, no stabilisation``: the estimate without the phase-correlation shift onto
  the first frame (the ablation of that step).

Reports the mean, median, 90th percentile and maximum absolute apex error in frames and
the share within 3 frames; for ``motion`` also the onset / offset errors (they are read
at 20 % of the rise, so they lie inside the true interval by construction). Target:
median within 3 frames. Run: ``.venv/bin/python benchmarks/bench_apex.py``.
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

from msmmt.config import PreprocessConfig  # noqa: E402
from msmmt.core.keyframes import sample_key_frames
from msmmt.data.readers import load_frames, read_dataset  # noqa: E402
from msmmt.data.synthetic import generate  # noqa: E402
from msmmt.ops.face import align_faces  # noqa: E402
from msmmt.ops.motion_signal import clip_key_frames  # noqa: E402


def _row(method: str, errors: list[int], seconds: float, extra: dict | None = None) -> dict:
    e = np.abs(np.array(errors))
    return {
        "method": method,
        "clips": len(e),
        "mae_frames": float(e.mean()),
        "median": float(np.median(e)),
        "p90": float(np.percentile(e, 90)),
        "max": int(e.max()),
        "within_3": float(np.mean(e <= 3)),
        "mean_signed": float(np.mean(errors)),
        "ms_per_clip": 1000 * seconds / len(e),
        **(extra or {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--clips", type=int, default=6)
    args = parser.parse_args()
    cfg = PreprocessConfig(face_size=224)
    errors = {"middle": [], "motion": [], "motion, no stabilisation": []}
    onset_err, offset_err, seconds = [], [], {k: 0.0 for k in errors}
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, subjects=args.subjects, clips_per_subject=args.clips, seed=7, size=256)
        for sample in read_dataset("synthetic", tmp):
            frames = load_frames(sample)
            faces = align_faces(frames, cfg)
            apex = sample_key_frames(sample).apex
            errors["middle"].append((len(frames) - 1) // 2 - apex)
            for name, stabilised in (("motion", True), ("motion, no stabilisation", False)):
                start = time.perf_counter()
                found = clip_key_frames(faces.frames, faces.landmarks, stabilised=stabilised)
                seconds[name] += time.perf_counter() - start
                errors[name].append(found.apex - apex)
                if stabilised:
                    onset_err.append(found.onset - sample_key_frames(sample).onset)
                    offset_err.append(found.offset - sample_key_frames(sample).offset)
    rows = [_row(name, e, seconds[name]) for name, e in errors.items()]
    for row in rows:
        motion = row["method"] == "motion"
        row["onset_signed"] = float(np.mean(onset_err)) if motion else None
        row["offset_signed"] = float(np.mean(offset_err)) if motion else None
    hist = np.bincount(np.minimum(np.abs(errors["motion"]), 10))
    print("motion |apex error| histogram (0..9, >=10):", hist.tolist())
    record("bench_apex", rows)


if __name__ == "__main__":
    main()
