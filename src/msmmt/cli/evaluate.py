"""``msmmt loso`` (leak-free cross-validation, resumable and shardable) and ``msmmt report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import (
    ADDRESS_OPT,
    CONFIG_ARG,
    DATA_OPT,
    DATASET_OPT,
    EXECUTOR_OPT,
    RETRIES_OPT,
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
        str | None, typer.Option(metavar="FOLD,...", help="Only these folds, comma-separated (e.g. casme2_sub01).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(metavar="I/N", help="I/N: run folds I, I+N, I+2N, ... so N processes can share the work."),
    ] = None,
    executor: Annotated[str, EXECUTOR_OPT] = "local",
    address: Annotated[str | None, ADDRESS_OPT] = None,
    workers: Annotated[
        int, typer.Option(min=1, metavar="N", help="Folds at once on a local Ray (--executor ray).")
    ] = 2,
    retries: Annotated[int, RETRIES_OPT] = 0,
    tensorboard: Annotated[
        bool,
        typer.Option(
            help="Also write each fold's training curves to OUT/tensorboard/<fold> "
            "(pip install 'msmmt[tensorboard]')."
        ),
    ] = False,
    seeds: Annotated[
        str | None,
        typer.Option(metavar="SEED,...", help="Comma-separated seeds, e.g. 0,1,2: one run per seed in OUT/seed-<n>, "
                     "summarised (mean, spread) in OUT/seeds.md."),
    ] = None,
) -> None:
    """Cross-validate by subject (eval.protocol: loso, or kfold grouped by subject).

    Each fold trains on the other subjects only (fixed epochs, or early stopping on a
    validation split of other training subjects with eval.early_stopping) and writes
    OUT/folds/<fold>/predictions.csv. Rerunning resumes: finished folds are skipped.
    A failing fold is recorded in its error.txt, the others go on, and the command
    exits with status 1. When every fold is done, OUT/report.md is written.
    OUT/status.csv and OUT/progress.json follow the run (state and node of every fold).
    """
    if seeds is not None:
        root = output_dir(out, "runs/loso")
        _loso_seeds(seeds, root, lambda run: loso(
            config, data, dataset, run, folds, shard, executor, address, workers, retries,
            tensorboard, None,
        ))
        return
    from msmmt.config import ConfigError
    from msmmt.core.records import DatasetError
    from msmmt.evaluation.executors import make_executor
    from msmmt.evaluation.runner import FoldsFailedError, RunDirMismatchError, run_folds
    from msmmt.model.backbone import preload_pretrained
    from msmmt.preprocess.cache import training_set

    cfg = load_or_fail(config)
    check_pretrained(cfg)
    if not data.exists():
        raise fail(f"--data {data}: no such file or folder")
    wanted = _fold_selection(folds, shard)
    try:
        runner = make_executor(executor, address, workers, STATE.threads or 1, retries, cfg.device)
    except ValueError as err:
        raise fail(str(err)) from None
    run = output_dir(out, "runs/loso")
    fit_predict = _fit_predict(cfg, run, tensorboard)
    try:
        cfg, samples = training_set(cfg, data, dataset)
        if cfg.baseline.kind == "none":  # no network, bad weights: fail here, not in every fold
            preload_pretrained(cfg.model)
        n_subjects = len({s.subject for s in samples})
        typer.echo(
            f"{cfg.eval.protocol}: {len(samples)} clips of {n_subjects} subjects "
            f"({cfg.data.class_set} classes) -> {run}"
        )
        summary = run_folds(
            cfg, samples, run, fit_predict, folds=wanted, shard=shard,
            progress=STATE.verbosity >= 0, executor=runner,
        )
    except FoldsFailedError as err:
        typer.echo(f"error: {err}", err=True)
        typer.echo(
            f"rerun the same command to retry them; `msmmt report {run}` for the rest", err=True
        )
        raise typer.Exit(1) from None
    except (DatasetError, ConfigError, RunDirMismatchError, ValueError) as err:
        raise fail(str(err)) from None
    _finish(summary, run)


def _fit_predict(cfg, run: Path, tensorboard: bool):
    """The fold executor the config asks for, logging to TensorBoard with ``--tensorboard``."""
    from msmmt.evaluation.fit_predict import fit_predict_for

    fit_predict = fit_predict_for(cfg)
    if tensorboard:
        from msmmt.evaluation.tensorboard import TENSORBOARD_DIR, TensorBoardFitPredict

        fit_predict = TensorBoardFitPredict(fit_predict, run / TENSORBOARD_DIR)
    return fit_predict


def _finish(summary, run: Path) -> None:
    """Say what ran; write and print the report once every fold of the plan is done."""
    from msmmt.cli.scores import write_and_print_report

    typer.echo(
        f"{len(summary.ran)} fold(s) run, {len(summary.skipped)} already done "
        f"(of {len(summary.selected)} selected)"
    )
    if not summary.complete:
        typer.echo(
            f"{len(summary.remaining)} of {len(summary.plan)} folds not done yet (other shards?); "
            f"when they are, `msmmt report {run}` writes the report"
        )
        return
    typer.echo(f"report: {write_and_print_report(run)}")


def _fold_selection(folds: str | None, shard: str | None) -> list[str] | None:
    """The fold names of ``--folds`` (None: all); a bad ``--shard`` fails here, before any work."""
    from msmmt.evaluation.runner import parse_shard

    if shard is not None:
        try:
            parse_shard(shard)
        except ValueError as err:
            raise fail(f"--shard: {err}") from None
    return [f.strip() for f in folds.split(",") if f.strip()] if folds else None


def _loso_seeds(seeds: str, root: Path, run_one) -> None:
    """``run_one(root/seed-<n>)`` once per seed, then ``root/seeds.md`` when all are done."""
    from msmmt.evaluation.comparison import ComparisonError, write_seed_summary
    from msmmt.evaluation.runner import CONFIG_FILE

    values = _parse_seeds(seeds)
    if (root / CONFIG_FILE).is_file():
        raise fail(
            f"--out {root}: already a single run (it holds {CONFIG_FILE}); --seeds needs a new "
            "folder or that of an earlier `loso --seeds`"
        )
    before = STATE.seed
    try:
        for s in values:
            STATE.seed = s
            typer.echo(f"== seed {s}")
            run_one(root / f"seed-{s}")
    finally:
        STATE.seed = before
    try:
        typer.echo(f"seeds: {write_seed_summary(root)}")
    except ComparisonError as err:
        typer.echo(f"no seed summary yet: {err}")


def _parse_seeds(seeds: str) -> list[int]:
    """The seeds of ``--seeds``: non-negative integers, at least one, none twice."""
    items = [s.strip() for s in seeds.split(",") if s.strip()]
    if not items or not all(s.isascii() and s.isdigit() for s in items):
        raise fail(f"--seeds {seeds!r}: expected comma-separated integers >= 0, e.g. 0,1,2")
    values = [int(s) for s in items]
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise fail(f"--seeds {seeds!r}: seed {twice[0]} is given twice")
    return values


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run folder written by `msmmt loso`.")],
) -> None:
    """Merge the finished folds of a run (from any shards) into report.md, metrics.csv,
    predictions.csv and figures; print the scores. Exits 1, writing nothing, if no fold is
    finished. For a folder of seed-<n> runs (loso --seeds): each seed's report (a seed with no
    finished fold is named and skipped) and, once every seed is finished, RUN/seeds.md."""
    from msmmt.cli.scores import write_and_print_report
    from msmmt.core.records import DatasetError
    from msmmt.evaluation.comparison import ComparisonError, seed_dirs, write_seed_summary
    from msmmt.evaluation.report import write_report

    if not run.is_dir():
        raise fail(f"{run}: no such run folder")
    if (run / "config.yaml").is_file() or not seed_dirs(run):
        if _report_run(run, write_and_print_report) is None:
            raise fail(f"{run}: no fold is finished yet", code=1)
        return
    written = []
    for d in seed_dirs(run):
        if _report_run(d, write_report) is None:
            typer.echo(f"{d}: no fold is finished yet; no report written", err=True)
        else:
            written.append(d)
    if not written:
        raise fail(f"{run}: no fold of any seed is finished yet", code=1)
    try:
        path = write_seed_summary(run)
    except (ComparisonError, DatasetError) as err:
        raise fail(str(err)) from None
    typer.echo(path.read_text())
    typer.echo(f"seeds: {path}")


def _report_run(run: Path, write) -> Path | None:
    """``write(run)`` and echo the report's path; None, writing nothing, if no fold is finished."""
    from msmmt.core.records import DatasetError
    from msmmt.evaluation.results import load_run

    try:
        if not load_run(run).folds("done"):
            return None
        path = write(run)
    except (FileNotFoundError, DatasetError) as err:
        raise fail(str(err)) from None
    typer.echo(f"report: {path}")
    return path
