"""Variants of the pixel head, refitted on the folds of finished blended runs (no ViT trained).

The pixel head (``model.pixel_blend``, docs/METHOD.md "Pixel head") never changes the ViT's
training, so a change to the head alone is measured on finished LOSO runs: for every fold of
the first RUN, each variant is fitted on the fold's training clips (the head's own features:
the model's motion input resampled bicubically to S x S) and scores the test clips; its
probabilities are blended 50/50 with the mean of the RUNs' saved ViT probabilities
(``vit_p_*``; one run: a single network, runs of seeds s and s + 1000: the seed ensemble) and
compared with the stored head of the first RUN on the same clips (paired subject bootstrap).
Variants:

* ``base``: the head as implemented (logistic regression, ``baseline.C``, balanced); it must
  reproduce the stored head (printed as a check);
* ``C=<c>``: another fixed regularisation strength;
* ``cv``: C chosen per fold among 0.01, 0.1 and 1 by a subject-grouped 5-fold cross-validation
  on the fold's training clips (UF1), nothing from the test subject;
* ``flip``: the training clips plus their mirror images (picture mirrored, u negated:
  :func:`msmmt.model.mirror.mirror`), and the test clip's probabilities averaged with
  its mirror's;
* ``flip+cv``: both;
* ``svm``: the ``svm`` baseline's RBF SVM (``baseline.C``, gamma "scale", balanced) with
  Platt-scaled probabilities (sigmoid calibration, 5-fold within the training clips) instead of
  the logistic regression;
* ``lr+svm``: the mean of the ``base`` and ``svm`` heads' probabilities;
* ``svm-softmax``: the ``svm`` baseline as it reports probabilities (softmax of its
  one-vs-rest decision values), no calibration;
* ``rbf``: kernel logistic regression with the SVM's kernel: the standardised features mapped
  by a Nystroem approximation of the RBF kernel (gamma = 1 / features, the SVM's "scale" on
  standardised features; as many components as training clips, i.e. the exact kernel on
  them), then the logistic regression (``baseline.C``, balanced): the SVM's nonlinearity with
  the logistic loss's probabilities.

Besides the scores it prints ``agrees_with_vit``, the fraction of clips on which the head and
the ViT predict the same class: a head that errs where the ViT errs adds little to the blend.
* ``S=<s>``: the logistic regression on the motion image resampled to s x s instead of S x S;
* ``pyramid``: the logistic regression on S x S, S/2 x S/2 and S/4 x S/4 resamplings
  side by side (coarser copies: features less sensitive to a misaligned face).

    .venv/bin/python benchmarks/bench_pixel_head_variants.py runs/loso_cpu_small_refit \
        runs/loso_seed1000 --dataset composite-release --data DATA --variants base cv flip
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from msmmt.config import load_config
from msmmt.core.labels import class_names
from msmmt.core.threads import limit_threads
from msmmt.data.readers import read_for_training
from msmmt.engine.baselines import fit_pixels, pixel_classifier
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.metrics import scores
from msmmt.evaluation.results import load_run
from msmmt.evaluation.runner import build_folds
from msmmt.evaluation.uncertainty import paired_difference
from msmmt.model.mirror import mirror
from msmmt.model.pixel_head import PixelHead, blend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import probability_run, record, uf1  # noqa: E402

CV_GRID = (0.01, 0.1, 1.0)


def _logreg(c: float, cfg):
    """The head's estimator (the ``logreg`` baseline's pipeline) with C = ``c``."""
    return pixel_classifier(cfg.baseline.model_copy(update={"kind": "logreg", "C": c}), cfg.seed)


def _chosen_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg) -> float:
    """The C of CV_GRID with the best subject-grouped 5-fold UF1 on these training clips."""
    best = (-1.0, CV_GRID[0])
    for c in CV_GRID:
        predicted = np.zeros(len(y), dtype=np.int64)
        for fit_rows, held in GroupKFold(5).split(x, y, groups):
            predicted[held] = _logreg(c, cfg).fit(x[fit_rows], y[fit_rows]).predict(x[held])
        best = max(best, (scores(y, predicted, 3)["uf1"], c))
    return best[1]


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    p = np.zeros((len(x), n_classes))
    p[:, model[-1].classes_] = model.predict_proba(x)
    return p


def _svm_proba(cfg, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """The ``svm`` baseline's pipeline with Platt-scaled probabilities, fitted on ``xs``."""
    svm = pixel_classifier(cfg.baseline.model_copy(update={"kind": "svm"}), cfg.seed)
    svm.steps[-1] = ("svc", CalibratedClassifierCV(svm[-1], method="sigmoid", cv=5, ensemble=False))
    return _proba(svm.fit(xs, ys), xt, 3)


def _svm_softmax(cfg, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """The ``svm`` baseline's probabilities (:func:`msmmt.engine.baselines.fit_pixels`)."""
    svm = cfg.model_copy(update={"baseline": cfg.baseline.model_copy(update={"kind": "svm"})})
    return fit_pixels(svm, xs, ys, xt, 3).probabilities


def _kernel_logreg(cfg, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """Logistic regression on Nystroem RBF features of the standardised pixels."""
    model = make_pipeline(
        StandardScaler(),
        Nystroem(kernel="rbf", gamma=1.0 / xs.shape[1], n_components=len(xs), random_state=cfg.seed),
        LogisticRegression(C=cfg.baseline.C, class_weight=cfg.baseline.class_weight, max_iter=cfg.baseline.max_iter,
                           random_state=cfg.seed),
    )
    return _proba(model.fit(xs, ys), xt, 3)


def head_variant(variant, cfg, x, x_mirror, y, subjects, train, test) -> tuple[np.ndarray, float]:
    """Test probabilities of one variant fitted on the rows ``train``; the C it used.

    ``x`` maps a feature set (``"base"``, ``"S=<s>"``, ``"pyramid"``) to its rows."""
    x = x.get(variant, x["base"])
    xs, ys, groups = x[train], y[train], subjects[train]
    if variant == "svm":
        return _svm_proba(cfg, xs, ys, x[test]), cfg.baseline.C
    if variant == "svm-softmax":
        return _svm_softmax(cfg, xs, ys, x[test]), cfg.baseline.C
    if variant == "rbf":
        return _kernel_logreg(cfg, xs, ys, x[test]), cfg.baseline.C
    if variant.startswith("flip"):
        xs, ys, groups = np.vstack([xs, x_mirror[train]]), np.tile(ys, 2), np.tile(groups, 2)
    c = cfg.baseline.C
    if variant.startswith("C="):
        c = float(variant[2:])
    elif variant.endswith("cv"):
        c = _chosen_c(xs, ys, groups, cfg)
    model = _logreg(c, cfg).fit(xs, ys)
    p = _proba(model, x[test], 3)
    if variant.startswith("flip"):
        p = (p + _proba(model, x_mirror[test], 3)) / 2
    if variant == "lr+svm":
        p = (p + _svm_proba(cfg, xs, ys, x[test])) / 2
    return p, c


def _fold_tables(run: Path) -> pd.DataFrame:
    """The run's pooled fold predictions (checked by :func:`load_run`), indexed by key."""
    return load_run(run).predictions.set_index("key").sort_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="Finished blended runs (same folds).")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["base", "C=0.1", "cv", "flip", "flip+cv"])
    args = ap.parse_args()
    limit_threads(1)
    cfg = load_config(args.runs[0] / "config.yaml")
    classes = class_names(cfg.data.class_set)
    samples = read_for_training(args.dataset, args.data, cfg.data)
    index = {s.key: i for i, s in enumerate(samples)}
    dataset = ModalityDataset(samples, classes, cfg.model.img_size)
    motion = torch.stack([dataset[i][1] for i in range(len(dataset))])
    size = cfg.model.pixel_size

    def pixels(s: int, images: torch.Tensor = motion) -> np.ndarray:
        return PixelHead(cfg.model.num_classes, s).features(images).double().numpy()

    x = {"base": pixels(size)}
    for variant in args.variants:
        if variant.startswith("S="):
            x[variant] = pixels(int(variant[2:]))
        elif variant == "pyramid":
            x[variant] = np.hstack([pixels(size), pixels(size // 2), pixels(size // 4)])
    x_mirror = pixels(size, mirror(None, motion)[1])
    y, subjects = dataset.labels, np.array([s.subject for s in samples])

    tables = [_fold_tables(run) for run in args.runs]
    first = tables[0]
    vit = np.mean([t[[f"vit_p_{c}" for c in classes]].to_numpy() for t in tables], axis=0)
    stored = first[[f"pixel_p_{c}" for c in classes]].to_numpy()
    rows_of = {k: i for i, k in enumerate(first.index)}

    clips = first.reset_index()

    def predictions(p: np.ndarray):
        return probability_run(clips, classes, p)

    reference = predictions(blend(vit, stored, 0.5))
    print(f"stored head UF1 {uf1(predictions(stored)):.4f}, blend {uf1(reference):.4f}")
    stored_head = predictions(stored)
    rows = []
    for variant in args.variants:
        start, chosen = time.perf_counter(), []
        head_p = np.zeros_like(stored)
        for fold in build_folds(cfg, samples):
            train = np.array([index[k] for k in fold.train_keys])
            test = np.array([index[k] for k in fold.test_keys])
            p, c = head_variant(variant, cfg, x, x_mirror, y, subjects, train, test)
            head_p[[rows_of[k] for k in fold.test_keys]] = p
            chosen.append(c)
        mixed = predictions(blend(vit, head_p, 0.5))
        d_head = paired_difference(predictions(head_p), stored_head)
        d_blend = paired_difference(mixed, reference)
        rows.append({
            "variant": variant, "runs": " + ".join(f"{r.parent.name}/{r.name}" for r in args.runs),
            "head_uf1": round(uf1(predictions(head_p)), 4),
            "head_minus_stored": round(d_head.difference, 4),
            "head_ci": f"[{d_head.lo:+.3f}, {d_head.hi:+.3f}]",
            "blend_uf1": round(uf1(mixed), 4),
            "blend_minus_stored": round(d_blend.difference, 4),
            "blend_ci": f"[{d_blend.lo:+.3f}, {d_blend.hi:+.3f}]",
            "agrees_with_vit": round(float(np.mean(head_p.argmax(1) == vit.argmax(1))), 3),
            "max_dp_vs_stored": float(np.abs(head_p - stored).max()),
            "C_chosen": ",".join(f"{c:g}x{chosen.count(c)}" for c in sorted(set(chosen))),
            "seconds": round(time.perf_counter() - start, 1),
        })
        print(rows[-1], flush=True)
    record("pixel_head_variants", rows)


if __name__ == "__main__":
    main()
