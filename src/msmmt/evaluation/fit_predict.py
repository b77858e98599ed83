"""What a fold runs: train on the fold's training subjects, predict its test subject.

:func:`train_and_predict` is what ``msmmt loso`` and ``msmmt demo`` hand to
:func:`msmmt.evaluation.runner.run_folds`; the runner itself knows no model, so a
baseline (:func:`baseline_fit_predict`) plugs in with the same signature
``(cfg, train, test, fold_dir) -> FoldOutput``; :func:`fit_predict_for` picks by config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msmmt.config import Config
from msmmt.core.records import Sample
from msmmt.engine.baselines import fit_baseline
from msmmt.engine.trainer import fit, predict_parts, predict_proba
from msmmt.evaluation.protocols import Fold, check_no_leak, validation_split
from msmmt.evaluation.runner import FitPredict, FoldOutput

EpochCallback = Callable[[dict[str, float]], None]
"""Receives one history row (epoch, losses, accuracy, ...) per finished epoch."""

__all__ = ["baseline_fit_predict", "fit_predict_for", "train_and_predict"]


def train_and_predict(
    cfg: Config,
    train: list[Sample],
    test: list[Sample],
    fold_dir: Path,
    on_epoch: EpochCallback | None = None,
) -> FoldOutput:
    """Train with :func:`msmmt.engine.trainer.fit` and predict the test samples.

    With ``cfg.eval.early_stopping`` a validation set of whole *training* subjects
    (``cfg.eval.val_fraction`` of them, drawn with ``cfg.seed``) is held out and the
    trainer stops / picks its epoch on it; the test subject is never looked at. Without
    it the model trains ``cfg.train.epochs`` epochs and the last epoch is used.
    ``on_epoch`` receives each epoch's history row as soon as it is done. With a pixel
    head (``cfg.model.pixel_blend``) the ViT's and the head's probabilities are returned
    apart too (``FoldOutput.parts``).
    """
    val: list[Sample] | None = None
    info: dict[str, Any] = {}
    if cfg.eval.early_stopping:
        train, val = validation_split(train, cfg.eval.val_fraction, seed=cfg.seed)
        fold = Fold(
            fold_dir.name,
            tuple(s.key for s in train),
            tuple(s.key for s in test),
            tuple(s.key for s in val),
        )
        check_no_leak(fold, [*train, *val, *test])
        info["val_subjects"] = sorted({s.subject for s in val})
    result = fit(cfg, train, val=val, out_dir=None, progress=False, on_epoch=on_epoch)
    info["best_epoch"] = result.best_epoch
    info |= result.info
    probabilities = predict_proba(result.model, test, cfg)
    parts = predict_parts(result.model, test, cfg)
    return FoldOutput(np.asarray(probabilities), list(result.history), info, parts)


def baseline_fit_predict(
    cfg: Config,
    train: list[Sample],
    test: list[Sample],
    fold_dir: Path,
    on_epoch: EpochCallback | None = None,
) -> FoldOutput:
    """Fit the baseline ``cfg.baseline.kind`` (:mod:`msmmt.engine.baselines`) and predict
    ``test``; ``on_epoch`` receives its history rows (STSTNet's epochs) when it is done."""
    result = fit_baseline(cfg, train, test)
    for row in result.history if on_epoch is not None else ():
        on_epoch(row)
    return FoldOutput(result.probabilities, result.history, result.info)


def fit_predict_for(cfg: Config) -> FitPredict:
    """The fold executor ``cfg`` asks for: the baseline ``cfg.baseline.kind``, else MSMMT."""
    return train_and_predict if cfg.baseline.kind == "none" else baseline_fit_predict
