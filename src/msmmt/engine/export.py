"""Saving a trained model with what :class:`msmmt.inference.predict.Predictor` needs to use it.

A checkpoint is the weights and the config (:mod:`msmmt.model.checkpoint`) plus
``extra.json``: the class names, the preprocessing settings the training images were
made with, what the texture images were (``dynamic`` images, or ``apex`` face crops for
the composite release, which a predictor then stands in with the aligned apex face), and
a summary of the training. :func:`save_trained` is the one place that builds it, for
``msmmt train`` and for the Python route alike::

    result = fit(cfg, samples)
    save_trained(result, cfg, samples, "runs/model")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from msmmt.config import Config
from msmmt.core.environment import environment
from msmmt.core.labels import class_names
from msmmt.core.records import Sample
from msmmt.engine.trainer import FitResult
from msmmt.model.checkpoint import save_checkpoint

__all__ = ["checkpoint_extra", "save_trained", "texture_kind"]


def texture_kind(samples: Sequence[Sample]) -> str:
    """``apex`` when the samples' texture images are apex crops (``extra["texture"]``, set
    by the composite-release reader), else ``dynamic``; a mix is a ValueError."""
    kinds = {s.extra.get("texture", "dynamic") for s in samples}
    if len(kinds) > 1:
        raise ValueError(
            f"the training clips mix texture images of kinds {sorted(kinds)}; "
            "train on one kind (dynamic images or the composite release's apex crops)"
        )
    return kinds.pop() if kinds else "dynamic"


def checkpoint_extra(
    cfg: Config,
    samples: Sequence[Sample],
    history: Sequence[dict[str, float]],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``extra.json`` of a model trained with ``cfg`` on ``samples``: class_names,
    preprocess, texture, trained_on (clips, subjects and ``source``, e.g. the data path),
    epochs (of the last member, for a seed ensemble), the final epoch's history row and the
    environment it was trained in (:func:`msmmt.core.environment.environment`)."""
    return {
        "class_names": list(class_names(cfg.data.class_set)),
        "preprocess": cfg.preprocess.model_dump(mode="json"),
        "texture": texture_kind(samples),
        "trained_on": {
            **(source or {}),
            "clips": len(samples),
            "subjects": len({s.subject for s in samples}),
        },
        "epochs": int(history[-1]["epoch"]) if history else 0,
        "final_epoch": history[-1] if history else None,
        "environment": environment(),
    }


def save_trained(
    result: FitResult,
    cfg: Config,
    samples: Sequence[Sample],
    directory: str | Path,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write ``result.model`` (trained with ``cfg`` on ``samples``) as a checkpoint folder
    with its :func:`checkpoint_extra`; return the folder."""
    extra = checkpoint_extra(cfg, samples, result.history, source)
    return save_checkpoint(result.model, cfg, directory, extra=extra)
