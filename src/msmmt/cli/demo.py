"""``msmmt demo``: the whole method on built-in synthetic data, end to end."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import STATE, app, check_folder, fail, load_or_fail, output_dir
from msmmt.config import Config
from msmmt.core.records import Sample
from msmmt.core.threads import limit_threads

DEMO_THREADS = 1
"""CPU threads of the demo unless --threads says otherwise: PyTorch's sums depend on the
thread count (2 threads instead of 1 moved the demo's probabilities by up to 0.021 and
flipped one prediction of 48: UF1 0.8949 instead of 0.8730, see docs/RELIABILITY.md), so a
fixed count makes the printed scores the same on every
machine of a kind, whatever its number of cores. On a busy 2-core machine one thread was
also 3-7x faster per fold than two (40-140 s against 330-720 s)."""


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default runs/demo).")
    ] = None,
    subjects: Annotated[int, typer.Option(min=2, metavar="N", help="Synthetic subjects (= LOSO folds).")] = 8,
    clips_per_subject: Annotated[
        int, typer.Option(min=1, metavar="N", help="Synthetic clips per subject.")
    ] = 6,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Preprocessing processes.")] = 2,
) -> None:
    """Synthesise a small dataset, preprocess it, run LOSO with the `demo` preset, report.

    Writes OUT/data (CASME II-layout clips), OUT/cache (dynamic and flow/strain
    images), OUT/run (per-fold predictions, report.md, figures). Rerunning resumes:
    finished clips and folds are not redone; a run made from earlier images of the clips
    (another msmmt version) is moved to OUT/run.outdated-N and made afresh. Runs on one CPU
    thread unless the global --threads is given, so that its scores do not depend on the
    machine's core count.
    """
    from msmmt.cli.scores import write_and_print_report
    from msmmt.data.readers import read_dataset, read_for_training
    from msmmt.preprocess.batch import preprocess_dataset

    cfg = load_or_fail(STATE.config or "demo")
    if STATE.threads is None:
        limit_threads(DEMO_THREADS)
    root = output_dir(out, "runs/demo")
    start = time.perf_counter()
    progress = STATE.verbosity >= 0

    data_dir, cache_dir, run_dir = (check_folder(root / name) for name in ("data", "cache", "run"))
    _synthesise(data_dir, (cache_dir, run_dir), subjects, clips_per_subject, cfg.seed)

    typer.echo(
        f"[2/4] preprocessing (face, magnification, dynamic image, TV-L1 flow, strain) -> {cache_dir}"
    )
    summary = preprocess_dataset(
        read_dataset("synthetic", data_dir), cfg.preprocess, cache_dir, workers, progress
    )
    if summary.failed:
        typer.echo(
            f"warning: {summary.failed} clips failed, see {cache_dir / 'failures.csv'}", err=True
        )

    typer.echo(f"[3/4] leave-one-subject-out training and testing -> {run_dir}")
    _run_loso(cfg, read_for_training("precomputed", cache_dir, cfg.data), run_dir, progress)

    typer.echo("[4/4] report")
    report = write_and_print_report(run_dir)
    typer.echo(f"report: {report}  ({time.perf_counter() - start:.0f} s in all)")


def _synthesise(data_dir: Path, derived: tuple[Path, ...], subjects: int, clips: int, seed: int) -> None:
    """Step 1: the synthetic clips in ``data_dir``, reused when they are the ones asked for;
    else made afresh, and the folders ``derived`` from the earlier clips are removed."""
    from msmmt.data.synthetic import generate

    if _existing_set(data_dir) == {"subjects": subjects, "clips_per_subject": clips, "seed": seed}:
        typer.echo(f"[1/4] synthetic clips: reusing {data_dir}")
        return
    _check_replaceable(data_dir, derived)
    typer.echo(f"[1/4] synthetic clips: {subjects} subjects x {clips} clips -> {data_dir}")
    for stale in derived:
        shutil.rmtree(stale, ignore_errors=True)
    generate(data_dir, subjects=subjects, clips_per_subject=clips, seed=seed)


def _check_replaceable(data_dir: Path, derived: tuple[Path, ...]) -> None:
    """Fail, before anything is removed, unless ``data_dir`` can take a new synthetic set
    and the folders ``derived`` are absent, empty or made from an earlier set there."""
    from msmmt.core.records import DatasetError
    from msmmt.data.synthetic import META_NAME, previous_folders

    try:
        previous_folders(data_dir)
    except (FileExistsError, DatasetError) as err:
        raise fail(str(err)) from None
    if (data_dir / META_NAME).is_file():
        return
    for folder in derived:
        if folder.is_dir() and any(folder.iterdir()):
            raise fail(
                f"{folder}: not empty, and {data_dir} holds no synthetic set it could have "
                "been made from; use another --out"
            )


def _run_loso(cfg: Config, samples: list[Sample], run_dir: Path, progress: bool) -> None:
    """Step 3: LOSO into ``run_dir``, resuming it; a run made from earlier images of these
    clips (another msmmt version, a rebuilt cache) is set aside and made afresh."""
    from msmmt.evaluation.fit_predict import fit_predict_for
    from msmmt.evaluation.runner import (
        FoldsFailedError,
        InputsChangedError,
        RunDirMismatchError,
        run_folds,
    )

    try:
        try:
            run_folds(cfg, samples, run_dir, fit_predict_for(cfg), progress=progress)
        except InputsChangedError:
            aside = _set_aside(run_dir)
            typer.echo(f"      {run_dir} was made from earlier images of these clips: moved to {aside}")
            run_folds(cfg, samples, run_dir, fit_predict_for(cfg), progress=progress)
    except RunDirMismatchError as err:
        raise fail(f"{err}\n(another config than the finished run's: use another --out)") from None
    except FoldsFailedError as err:
        raise fail(f"{err}\nrerun the same command to retry them", code=1) from None


def _set_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to the first free ``run_dir.outdated-N``; return the new path."""
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.outdated-{n}")).exists():
        n += 1
    run_dir.rename(aside)
    return aside


def _existing_set(data_dir: Path) -> dict | None:
    """Subjects, clips per subject and seed of the synthetic set in ``data_dir``, if any."""
    from msmmt.data.synthetic import META_NAME

    try:
        meta = json.loads((data_dir / META_NAME).read_text())
        return {k: meta[k] for k in ("subjects", "clips_per_subject", "seed")}
    except (OSError, ValueError, KeyError):
        return None
