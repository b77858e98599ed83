"""The calibrated composite-like benchmark: generate, preprocess to the release form, score baselines.

1. ``msmmt synth --preset composite-like`` (:func:`msmmt.data.synthetic_composite.generate_composite`):
   442 clips of 68 subjects in the CASME2 / SAMM / SMIC layouts;
2. msmmt's preprocessing to the composite release's form (:func:`msmmt.preprocess.release.export_release`:
   224 px apex crop + 28 x 28 (u, v, |e|) image, read back with ``--dataset composite-release``);
3. LOSO over the 68 subjects of two baselines on the raw 28 x 28 x 3 flow pixels, the scaler
   fitted per training fold, nothing tuned: an RBF SVM (C = 1, gamma = "scale", balanced class
   weights) and logistic regression (C = 1, balanced); UF1 / UAR of the predictions pooled over
   the folds, overall and per part.

On the real composite release the same SVM scores UF1 0.718 (SMIC 0.666, CASME II 0.862, SAMM
0.585) and logistic regression 0.696: the preset's difficulty is calibrated to land near them.
Each run appends a row to ``results/synth_calibration.csv``: the settings changed from the preset
(``--override``) and the hash of all of them (written out in ``results/synth_calibration/<hash>.json``),
the wall times of generation and preprocessing (NaN: reused), the scores.

Run (2 cores shared)::

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_composite_like.py --workers 2
    ... --override '{"*": {"peak_px": [0.2, 1.5]}, "smic": {"noise_std": [3, 6]}}' --tag lower-peak

A set already generated and exported for the same preset, overrides and seed (under
``--work``/<hash>) is reused; ``--keep-clips`` keeps its clips and preprocessing cache (about
200 MB + 650 MB), which are removed after the export otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, record  # noqa: E402

from msmmt.core.labels import class_names  # noqa: E402
from msmmt.data.readers import read_dataset  # noqa: E402
from msmmt.data.synthetic_composite import generate_composite  # noqa: E402
from msmmt.data.synthetic_plan import PRESETS, SynthPreset  # noqa: E402
from msmmt.engine.metrics import scores, scores_by_group  # noqa: E402
from msmmt.preprocess.release import export_release  # noqa: E402

REAL = {"svm_uf1": 0.718, "svm_smic": 0.666, "svm_casme2": 0.862, "svm_samm": 0.585, "lr_uf1": 0.696}
"""The baselines on the real composite release (issue 10)."""


def with_overrides(preset: SynthPreset, overrides: dict[str, dict]) -> SynthPreset:
    """``preset`` with settings fields replaced: ``{"*": {...}, "smic": {...}}`` (lists -> tuples)."""
    parts = []
    for part in preset.parts:
        changes = {**overrides.get("*", {}), **overrides.get(part.dataset, {})}
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        parts.append(replace(part, settings=replace(part.settings, **changes)))
    return replace(preset, parts=tuple(parts))


def settings_key(preset: SynthPreset, seed: int) -> tuple[str, str]:
    """(12-digit hash, JSON text) of everything a set depends on."""
    text = json.dumps({"preset": asdict(preset), "seed": seed}, sort_keys=True, indent=1, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12], text


def build(preset: SynthPreset, work: Path, seed: int, workers: int, keep: bool) -> tuple[Path, float, float]:
    """Generate and export (or reuse) the set; its release folder and the two wall times."""
    key, text = settings_key(preset, seed)
    (RESULTS / "synth_calibration").mkdir(parents=True, exist_ok=True)
    (RESULTS / "synth_calibration" / f"{key}.json").write_text(text + "\n")
    root = work / key
    release = root / "release"
    if (release / "composite_release.csv").is_file():
        return release, float("nan"), float("nan")
    start = time.perf_counter()
    generate_composite(root / "clips", preset, seed, workers, progress=True)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    samples = read_dataset("composite", root / "clips")
    export_release(samples, release, root / "cache", workers=workers, progress=True)
    prep_s = time.perf_counter() - start
    if not keep:
        shutil.rmtree(root / "clips")
        shutil.rmtree(root / "cache")
    return release, gen_s, prep_s


def flow_pixels(release: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X (N, 28*28*3) in [0, 1], labels, subjects and parts of a release folder."""
    import cv2

    samples = read_dataset("composite-release", release)
    names = class_names("composite")
    x = np.stack([cv2.imread(str(s.motion_image))[..., ::-1].reshape(-1) for s in samples]) / 255.0
    y = np.array([names.index(s.label) for s in samples])
    return x, y, np.array([s.subject for s in samples]), np.array([s.dataset for s in samples])


def loso_predictions(model, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Predictions of each held-out subject by ``model`` (a fresh clone per fold)."""
    from sklearn.base import clone
    from sklearn.model_selection import LeaveOneGroupOut

    pred = np.empty_like(y)
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        pred[test] = clone(model).fit(x[train], y[train]).predict(x[test])
    return pred


def baselines() -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {
        "svm": make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale", class_weight="balanced")),
        "lr": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)),
    }


def evaluate(release: Path) -> dict[str, float]:
    x, y, groups, parts = flow_pixels(release)
    row: dict[str, float] = {"clips": len(y), "subjects": len(set(groups))}
    for name, model in baselines().items():
        pred = loso_predictions(model, x, y, groups)
        overall = scores(y, pred, 3)
        row[f"{name}_uf1"], row[f"{name}_uar"] = overall["uf1"], overall["uar"]
        for part, s in scores_by_group(y, pred, parts, 3).items():
            row[f"{name}_{part}"] = s["uf1"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("data/composite-like"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--override", default="{}", help="JSON {part or '*': {SynthSettings field: value}}")
    parser.add_argument("--tag", default="preset")
    parser.add_argument("--keep-clips", action="store_true")
    args = parser.parse_args()
    overrides = json.loads(args.override)
    preset = with_overrides(PRESETS["composite-like"], overrides)
    release, gen_s, prep_s = build(preset, args.work, args.seed, args.workers, args.keep_clips)
    row = {
        "tag": args.tag,
        "settings": settings_key(preset, args.seed)[0],
        "seed": args.seed,
        "override": json.dumps(overrides, sort_keys=True),
    }
    row.update(generate_s=gen_s, preprocess_s=prep_s, workers=args.workers, **evaluate(release))
    record("synth_calibration", [row])
    print("real composite release:", ", ".join(f"{k} {v}" for k, v in REAL.items()))


if __name__ == "__main__":
    main()
