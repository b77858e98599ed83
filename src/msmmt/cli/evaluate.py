"""``msmmt loso`` (leak-free cross-validation, resumable and shardable) and ``msmmt report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import (
    CONFIG_ARG,
    DATA_OPT,
    DATASET_OPT,
    STATE,
    app,
    check_pretrained,
    fail,
    load_or_fail,
    output_dir,
)


@app.command()
def loso(
    config: Annotated[str | None, CONFIG_ARG] = None,
    data: Annotated[Path, DATA_OPT] = ...,
    dataset: Annotated[str, DATASET_OPT] = "precomputed",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/loso).")
    ] = None,
    folds: Annotated[
        str | None, typer.Option(help="Only these folds, comma-separated (e.g. casme2_sub01).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: run folds I, I+N, I+2N, ... so N processes can share the work."),
    ] = None,
) -> None:
    """Cross-validate by subject (eval.protocol: loso, or kfold grouped by subject).

    Each fold trains on the other subjects only (fixed epochs, or early stopping on a
    validation split of other training subjects with eval.early_stopping) and writes
    OUT/folds/<fold>/predictions.csv. Rerunning resumes: finished folds are skipped.
    A failing fold is recorded in its error.txt, the others go on, and the command
    exits with status 1. When every fold is done, OUT/report.md is written.
    """
    from msmmt.config import ConfigError
    from msmmt.core.records import DatasetError
    from msmmt.data.readers import read_for_training
    from msmmt.evaluation.report import write_report
    from msmmt.evaluation.runner import (
        FoldsFailedError,
        RunDirMismatchError,
        build_folds,
        fold_status,
        parse_shard,
        run_folds,
    )
    from msmmt.preprocess.cache import adopt_cache_settings

    cfg = load_or_fail(config)
    check_pretrained(cfg)
    if not data.exists():
        raise fail(f"--data {data}: no such file or folder")
    if shard is not None:
        try:
            parse_shard(shard)
        except ValueError as err:
            raise fail(f"--shard: {err}") from None
    wanted = [f.strip() for f in folds.split(",") if f.strip()] if folds else None
    run = output_dir(out, "runs/loso")
    try:
        if dataset == "precomputed":  # evaluate with (and record) the cache's settings
            cfg = adopt_cache_settings(cfg, data)
        samples = read_for_training(dataset, data, cfg.data)
        n_subjects = len({s.subject for s in samples})
        typer.echo(
            f"{cfg.eval.protocol}: {len(samples)} clips of {n_subjects} subjects "
            f"({cfg.data.class_set} classes) -> {run}"
        )
        summary = run_folds(
            cfg, samples, run, folds=wanted, shard=shard, progress=STATE.verbosity >= 0
        )
    except FoldsFailedError as err:
        typer.echo(f"error: {err}", err=True)
        typer.echo(
            f"rerun the same command to retry them; `msmmt report {run}` for the rest", err=True
        )
        raise typer.Exit(1) from None
    except (DatasetError, ConfigError, RunDirMismatchError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(
        f"{len(summary.ran)} fold(s) run, {len(summary.skipped)} already done "
        f"(of {len(summary.selected)} selected)"
    )
    names = [f.name for f in build_folds(cfg, samples)]
    left = [n for n in names if fold_status(run, n) != "done"]
    if left:
        typer.echo(
            f"{len(left)} of {len(names)} folds not done yet (other shards?); "
            f"when they are, `msmmt report {run}` writes the report"
        )
        return
    typer.echo(f"report: {write_report(run, echo=STATE.verbosity >= 0)}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run folder written by `msmmt loso`.")],
) -> None:
    """Merge the finished folds of a run (from any shards) into report.md, metrics.csv,
    predictions.csv and figures; print the scores. Exits 1 if no fold is finished."""
    from msmmt.core.records import DatasetError
    from msmmt.evaluation.report import load_run, write_report

    if not run.is_dir():
        raise fail(f"{run}: no such run folder")
    try:
        path = write_report(run, echo=STATE.verbosity >= 0)
        done = load_run(run).folds("done")
    except (FileNotFoundError, DatasetError) as err:
        raise fail(str(err)) from None
    typer.echo(f"report: {path}")
    if not done:
        raise fail(f"{run}: no fold is finished yet", code=1)
