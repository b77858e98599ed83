"""End-to-end ``predict`` latency for one 60-frame 640 x 480 clip.

* cold: ``msmmt predict MODEL CLIP --json`` as a new process (Python start-up,
  imports, checkpoint and dlib model loading, preprocessing, the forward pass);
* warm: a :class:`msmmt.inference.predict.Predictor` already loaded analyses the clip again
  (what a service or a notebook pays per clip), split into its stages.

The model is an untrained network of the chosen preset (latency does not depend on
the weights). The clip is a synthetic face (``msmmt synth``) placed on a 640 x 480
canvas, 60 frames, onset 0, apex 30.

    .venv/bin/python benchmarks/bench_predict.py [--configs cpu-small demo] [--threads 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, timeit  # noqa: E402

from msmmt.config import load_config  # noqa: E402
from msmmt.data.synthetic import generate  # noqa: E402
from msmmt.inference.predict import Predictor  # noqa: E402
from msmmt.model import build_model  # noqa: E402
from msmmt.model.checkpoint import save_checkpoint  # noqa: E402

FRAMES, WIDTH, HEIGHT = 60, 640, 480


def make_clip(folder: Path) -> Path:
    """60 frames of a synthetic micro-expression, centred on a 640 x 480 canvas."""
    generate(folder / "synth", subjects=1, clips_per_subject=1, size=HEIGHT)
    source = sorted((folder / "synth" / "sub01").glob("*/img*.jpg"), key=lambda p: int(p.stem[3:]))
    clip = folder / "clip"
    clip.mkdir()
    pad = (WIDTH - HEIGHT) // 2
    for i in range(FRAMES):
        frame = cv2.imread(str(source[min(i, len(source) - 1)]))
        frame = cv2.copyMakeBorder(frame, 0, 0, pad, pad, cv2.BORDER_REPLICATE)
        cv2.imwrite(str(clip / f"img{i + 1}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["cpu-small", "demo"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (warm runs)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp)
        marks = {"onset": 1, "apex": 31, "offset": FRAMES}
        for name in args.configs:
            cfg = load_config(name, ["model.pretrained=null"])
            model_dir = save_checkpoint(build_model(cfg.model), cfg, tmp / f"model-{name}")
            cmd = [sys.executable, "-m", "msmmt", "predict", str(model_dir), str(clip), "--json"]
            cmd += [arg for k, v in marks.items() for arg in (f"--{k}", str(v))]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            cold = time.perf_counter() - t0

            t0 = time.perf_counter()
            predictor = Predictor(model_dir)
            load = time.perf_counter() - t0
            predictor.analyse(clip, **marks)  # loads dlib, warms caches
            warm = timeit(lambda p=predictor: p.analyse(clip, **marks), repeat=args.repeat, warmup=0)
            stages = predictor.analyse(clip, **marks).images.info.get("ms", {})
            rows.append(
                dict(
                    config=name,
                    cold_process_s=cold,
                    checkpoint_load_s=load,
                    warm_s=warm,
                    stages_ms=" ".join(f"{k}={v:.0f}" for k, v in stages.items()),
                    threads=args.threads,
                )
            )
    record("predict", rows)


if __name__ == "__main__":
    main()
