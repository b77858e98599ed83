"""Run an evaluation protocol fold by fold, resumably, in shards, without leaks.

Layout of a run directory::

    RUN/config.yaml            the run's config (a rerun with another config is refused)
    RUN/samples.csv            key, dataset, subject, clip, label of every sample
    RUN/inputs.csv             key and a hash of each sample's image files (another --data
                               with the same keys is refused on resume)
    RUN/folds.csv              the plan: fold name and test sample key
    RUN/folds/<fold>/predictions.csv   key, subject, dataset, true, predicted, p_<class>...
    RUN/folds/<fold>/history.csv       one row per training epoch
    RUN/folds/<fold>/done.json         written last: the fold is finished; records the
                                       environment it ran in (libraries, CPU, threads)
    RUN/folds/<fold>/error.txt         the traceback of a failed fold

The model is not the runner's business: the caller hands it ``fit_predict(cfg, train, test,
fold_dir)``, which trains on ``train`` and returns a :class:`FoldOutput` with class
probabilities for ``test`` (:func:`msmmt.evaluation.fit_predict.train_and_predict` for MSMMT;
a baseline plugs in the same way). Every fold goes through
:func:`~msmmt.evaluation.protocols.check_no_leak` before it runs.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from msmmt.config import Config, ConfigError, flat_settings, load_config, save_config
from msmmt.core.environment import environment
from msmmt.core.io import (
    atomic_write_json,
    atomic_write_text,
    file_digest,
    remove_stale_temporaries,
)
from msmmt.core.labels import class_names, label_indices
from msmmt.core.records import Sample
from msmmt.evaluation.executors import Executor, LocalExecutor
from msmmt.evaluation.progress import FoldMonitor
from msmmt.evaluation.protocols import Fold, check_no_leak, group_kfold, loso_folds

__all__ = [
    "CONFIG_FILE",
    "DONE_FILE",
    "ERROR_FILE",
    "FOLDS_DIR",
    "HISTORY_FILE",
    "PLAN_FILE",
    "PREDICTIONS_FILE",
    "SAMPLES_FILE",
    "FitPredict",
    "FoldJob",
    "FoldOutput",
    "FoldsFailedError",
    "FoldRunSummary",
    "InputsChangedError",
    "RunDirMismatchError",
    "build_folds",
    "fold_status",
    "parse_shard",
    "run_folds",
    "select_folds",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
SAMPLES_FILE = "samples.csv"
INPUTS_FILE = "inputs.csv"
PLAN_FILE = "folds.csv"
FOLDS_DIR = "folds"
PREDICTIONS_FILE = "predictions.csv"
HISTORY_FILE = "history.csv"
DONE_FILE = "done.json"
ERROR_FILE = "error.txt"

# Settings that change where/how fast a run executes, not its results: shards of one run
# may differ in them (e.g. one on a GPU machine, one on a CPU).
_EXECUTION_KEYS = {"device", "train.num_workers"}


@dataclass
class FoldOutput:
    """What ``fit_predict`` returns for one fold."""

    probabilities: np.ndarray
    """(N_test, C) class probabilities, rows in the order of the test samples."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per training epoch (epoch, train_loss, val_loss, ...)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Extra facts recorded in the fold's done.json (e.g. best_epoch, validation subjects)."""
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    """Component name -> (N_test, C) probabilities of a blended model's parts (``vit``,
    ``pixel``), written as ``<part>_p_<class>`` columns beside ``p_<class>``."""


FitPredict = Callable[[Config, list[Sample], list[Sample], Path], FoldOutput]


class FoldsFailedError(RuntimeError):
    """Some folds raised; the others ran. ``summary.failed`` maps fold -> error message."""

    def __init__(self, summary: FoldRunSummary):
        self.summary = summary
        lines = [
            f"  {name}: {msg}  (see {summary.out_dir / FOLDS_DIR / name / ERROR_FILE})"
            for name, msg in summary.failed.items()
        ]
        super().__init__(f"{len(summary.failed)} fold(s) failed:\n" + "\n".join(lines))


class RunDirMismatchError(RuntimeError):
    """The run directory holds a run with another config, sample list or fold plan."""


class InputsChangedError(RunDirMismatchError):
    """The run directory holds a run made from other bytes of the same samples' images
    (e.g. the cache was rebuilt by another msmmt version)."""


@dataclass
class FoldRunSummary:
    """What one :func:`run_folds` call did, and what the whole run still lacks."""

    out_dir: Path
    selected: list[str]
    """Folds this call was asked to run (after --folds and --shard)."""
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Already finished before this call (resume)."""
    failed: dict[str, str] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    """Every fold of the run, in plan order."""
    remaining: list[str] = field(default_factory=list)
    """Folds of the whole plan not finished after this call (by any shard)."""

    @property
    def complete(self) -> bool:
        """Every fold of the plan is finished: the run is ready for its report."""
        return not self.remaining


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``1 <= i <= n``: run folds i, i+n, i+2n, ..."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return int(m.group(1)), int(m.group(2))


def build_folds(cfg: Config, samples: Sequence[Sample]) -> list[Fold]:
    """The folds of ``cfg.eval.protocol`` (``loso`` or subject-grouped ``kfold``)."""
    if cfg.eval.protocol == "loso":
        return loso_folds(samples)
    return group_kfold(samples, cfg.eval.k, cfg.seed)


def select_folds(
    plan: Sequence[Fold], names: Sequence[str] | None = None, shard: str | None = None
) -> list[Fold]:
    """The folds of ``plan`` to run: shard ``i/n`` takes plan positions i, i+n, ... (1-based),
    then ``names`` (if given) narrows to those folds. Unknown names are an error."""
    selected = list(plan)
    if shard is not None:
        i, n = parse_shard(shard)
        selected = selected[i - 1 :: n]
    if names:
        known = {f.name for f in plan}
        unknown = [n for n in names if n not in known]
        if unknown:
            shown = ", ".join(sorted(known)[:10]) + (" ..." if len(known) > 10 else "")
            raise ValueError(f"unknown fold(s) {unknown}; folds are: {shown}")
        wanted = set(names)
        selected = [f for f in selected if f.name in wanted]
    return selected


def fold_status(run_dir: str | Path, name: str) -> str:
    """``done`` (done.json present), ``failed`` (error.txt, no done.json) or ``missing``."""
    d = Path(run_dir) / FOLDS_DIR / name
    if (d / DONE_FILE).is_file():
        return "done"
    if (d / ERROR_FILE).is_file():
        return "failed"
    return "missing"


def _config_differences(a: Config, b: Config) -> list[str]:
    fa, fb = flat_settings(a), flat_settings(b)
    keys = (fa.keys() | fb.keys()) - _EXECUTION_KEYS
    return sorted(k for k in keys if fa.get(k) != fb.get(k))


def _write_or_check(path: Path, text: str, what: str) -> None:
    if path.is_file():
        if path.read_text() != text:
            raise RunDirMismatchError(
                f"{path}: this run directory was made for a different {what}; "
                "use a new --out directory (or delete this one to start over)"
            )
    else:
        atomic_write_text(path, text)


def _input_digest(sample: Sample) -> str:
    """Hash of the bytes of a sample's images (precomputed), else of its frames' stats."""
    images = [p for p in (sample.texture_image, sample.motion_image) if p is not None]
    if images:
        return file_digest(images, content=True)
    return file_digest([p for p in (*sample.frames, sample.video) if p is not None])


def _check_inputs(samples: Sequence[Sample], out: Path) -> None:
    """Record the samples' input hashes in RUN/inputs.csv, or refuse other inputs on resume."""
    now = pd.DataFrame([(s.key, _input_digest(s)) for s in samples], columns=["key", "digest"])
    path = out / INPUTS_FILE
    if not path.is_file():
        atomic_write_text(path, now.to_csv(index=False))
        return
    was = dict(pd.read_csv(path, dtype=str).itertuples(index=False, name=None))
    changed = [k for k, d in now.itertuples(index=False, name=None) if was.get(k) != d]
    if changed:
        raise InputsChangedError(
            f"{out}: refusing to resume a run made from other input data: the images of "
            f"{len(changed)} sample(s) differ (e.g. {', '.join(changed[:3])}). "
            "Use a new --out directory."
        )


def _prepare_run_dir(cfg: Config, samples: Sequence[Sample], plan: Sequence[Fold], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        try:
            saved = load_config(cfg_path)
        except ConfigError as err:
            raise RunDirMismatchError(f"{err} (the saved config of run {out})") from None
        diff = _config_differences(saved, cfg)
        if diff:
            was, now = flat_settings(saved), flat_settings(cfg)
            shown = ", ".join(f"{k} (saved {was.get(k)!r}, now {now.get(k)!r})" for k in diff[:5])
            raise RunDirMismatchError(
                f"{out}: refusing to resume a run made with a different config; differs in "
                f"{shown}{' ...' if len(diff) > 5 else ''}. Use a new --out directory."
            )
    else:
        save_config(cfg, cfg_path)
    table = pd.DataFrame(
        [(s.key, s.dataset, s.subject, s.clip, s.label) for s in samples],
        columns=["key", "dataset", "subject", "clip", "label"],
    )
    _write_or_check(out / SAMPLES_FILE, table.to_csv(index=False), "sample list")
    rows = [(f.name, k) for f in plan for k in f.test_keys]
    plan_text = pd.DataFrame(rows, columns=["fold", "key"]).to_csv(index=False)
    _write_or_check(out / PLAN_FILE, plan_text, "fold plan")
    _check_inputs(samples, out)


def _checked_probabilities(values, shape: tuple[int, int], what: str) -> np.ndarray:
    """``values`` as float64, or ValueError unless they are finite and of ``shape``."""
    probs = np.asarray(values, dtype=np.float64)
    if probs.shape != shape:
        raise ValueError(f"fit_predict returned {what} of shape {probs.shape}, expected {shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"fit_predict returned non-finite {what}")
    return probs


def _run_fold(
    cfg: Config,
    fold: Fold,
    by_key: dict[str, Sample],
    labels: dict[str, int],
    classes: Sequence[str],
    fold_dir: Path,
    fit_predict: FitPredict,
) -> None:
    train = [by_key[k] for k in fold.train_keys]
    test = [by_key[k] for k in fold.test_keys]
    start = time.perf_counter()
    output = fit_predict(cfg, train, test, fold_dir)
    probs = _checked_probabilities(output.probabilities, (len(test), len(classes)), "probabilities")
    parts = {
        part: _checked_probabilities(p, probs.shape, f"{part} probabilities")
        for part, p in output.parts.items()
    }
    pred = probs.argmax(axis=1)
    table = pd.DataFrame(
        {
            "key": [s.key for s in test],
            "subject": [s.subject for s in test],
            "dataset": [s.dataset for s in test],
            "true": [classes[labels[s.key]] for s in test],
            "predicted": [classes[i] for i in pred],
        }
    )
    for j, c in enumerate(classes):
        table[f"p_{c}"] = probs[:, j]
    for part, part_probs in parts.items():
        for j, c in enumerate(classes):
            table[f"{part}_p_{c}"] = part_probs[:, j]
    atomic_write_text(fold_dir / PREDICTIONS_FILE, table.to_csv(index=False))
    atomic_write_text(fold_dir / HISTORY_FILE, pd.DataFrame(output.history).to_csv(index=False))
    atomic_write_json(
        fold_dir / DONE_FILE,
        {
            "fold": fold.name,
            "n_train": len(train),
            "n_test": len(test),
            "seconds": round(time.perf_counter() - start, 3),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "environment": {**environment(), "torch_threads": str(torch.get_num_threads())},
            **output.info,
        },
    )


@dataclass
class FoldJob:
    """One fold into ``out_dir/folds/<name>``: what every executor calls for every fold.

    Writes predictions.csv, history.csv and finally done.json, each atomically, so a fold
    killed at any point is simply redone on resume. Picklable (for Ray) when
    ``fit_predict`` is.
    """

    cfg: Config
    samples: list[Sample]
    out_dir: Path
    fit_predict: FitPredict

    def __call__(self, fold: Fold) -> str | None:
        """Run ``fold``: None when it is done, else the error (also written to error.txt)."""
        fold_dir = self.out_dir / FOLDS_DIR / fold.name
        fold_dir.mkdir(parents=True, exist_ok=True)
        (fold_dir / ERROR_FILE).unlink(missing_ok=True)
        classes = class_names(self.cfg.data.class_set)
        y = label_indices([s.label for s in self.samples], classes, [s.key for s in self.samples])
        by_key = {s.key: s for s in self.samples}
        labels = {s.key: int(i) for s, i in zip(self.samples, y, strict=True)}
        try:
            check_no_leak(fold, self.samples)
            _run_fold(self.cfg, fold, by_key, labels, classes, fold_dir, self.fit_predict)
        except Exception as err:
            self.record_failure(fold.name, traceback.format_exc())
            return f"{type(err).__name__}: {err}"
        return None

    def record_failure(self, name: str, text: str) -> None:
        """Write ``text`` to the fold's error.txt (e.g. the task running it died)."""
        atomic_write_text(self.out_dir / FOLDS_DIR / name / ERROR_FILE, text)


def run_folds(
    cfg: Config,
    samples: Sequence[Sample],
    out_dir: str | Path,
    fit_predict: FitPredict,
    folds: Sequence[str] | None = None,
    shard: str | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> FoldRunSummary:
    """Run the folds of ``cfg.eval.protocol`` over ``samples`` into ``out_dir`` with ``fit_predict``.

    Finished folds (with done.json) are skipped, so a rerun resumes. ``shard="i/n"`` runs
    plan positions i, i+n, ... so that n processes can share a run directory; ``folds``
    restricts to the named folds. A fold that raises an ``Exception`` gets an error.txt
    and the others go on; :class:`FoldsFailedError` is raised at the end if any failed.
    ``KeyboardInterrupt`` / ``SystemExit`` stop the run at once (the fold stays unfinished
    and is redone on resume). Sample labels must be class names of ``cfg.data.class_set``.
    The summary's ``remaining`` lists the plan's folds still unfinished (other shards).
    ``executor`` runs the unfinished folds (default :class:`LocalExecutor`: one after the
    other in this process); ``RUN/status.csv`` and ``RUN/progress.json`` follow the run.
    """
    out = Path(out_dir)
    samples = list(samples)
    classes = class_names(cfg.data.class_set)
    label_indices([s.label for s in samples], classes, [s.key for s in samples])  # fail early
    plan = build_folds(cfg, samples)
    selected = select_folds(plan, folds, shard)
    _prepare_run_dir(cfg, samples, plan, out)

    summary = FoldRunSummary(out, [f.name for f in selected], plan=[f.name for f in plan])
    pending = []
    for fold in selected:
        if fold_status(out, fold.name) == "done":
            summary.skipped.append(fold.name)
        else:
            pending.append(fold)
    executor = executor or LocalExecutor()
    job = FoldJob(cfg, samples, out, fit_predict)
    with FoldMonitor(out, summary.selected, summary.skipped, executor.name, shard, progress) as mon:
        attempts = executor.run(job, pending, mon)
    for fold in pending:
        attempt = attempts[fold.name]
        if attempt.error is None:
            summary.ran.append(fold.name)
        else:
            summary.failed[fold.name] = attempt.error.splitlines()[0]
            log.error("fold %s failed: %s", fold.name, summary.failed[fold.name])
    summary.remaining = [f.name for f in plan if fold_status(out, f.name) != "done"]
    log.info(
        "%s: %d fold(s) run, %d already done, %d failed",
        out, len(summary.ran), len(summary.skipped), len(summary.failed),
    )
    if summary.failed:
        raise FoldsFailedError(summary)
    return summary
