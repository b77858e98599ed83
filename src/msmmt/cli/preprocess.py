"""``msmmt preprocess``: clips -> cached dynamic images and flow/strain images + manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import (
    ADDRESS_OPT,
    EXECUTOR_OPT,
    RETRIES_OPT,
    STATE,
    app,
    fail,
    load_or_fail,
    output_dir,
)


def _annotations(values: list[str] | None) -> str | dict[str, str] | None:
    """One file, or ``casme2=FILE`` / ``samm=FILE`` pairs (the composite set)."""
    if not values:
        return None
    if all("=" in v for v in values):
        return dict(v.split("=", 1) for v in values)
    if len(values) == 1:
        return values[0]
    raise fail("--annotations: give one file, or NAME=FILE pairs (composite: casme2=..., samm=...)")


@app.command("preprocess")
def preprocess(
    dataset: Annotated[str, typer.Argument(help="casme2, samm, smic, composite or synthetic.")],
    root: Annotated[Path, typer.Argument(help="The dataset's folder.")],
    annotations: Annotated[
        list[str] | None,
        typer.Option(
            "--annotations",
            "-a",
            metavar="FILE|NAME=FILE",
            help="Coding sheet (default: found under ROOT); for composite, "
            "casme2=FILE and samm=FILE (repeat the option).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Cache folder (default: cache).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Processes working on clips at once.")] = 1,
    executor: Annotated[str, EXECUTOR_OPT] = "local",
    address: Annotated[str | None, ADDRESS_OPT] = None,
    retries: Annotated[int, RETRIES_OPT] = 0,
    batch_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="Clips per Ray task (--executor ray).")
    ] = 4,
) -> None:
    """Align faces, magnify, and compute each clip's dynamic image and flow/strain image.

    Settings come from the config's `preprocess` section. Writes CACHE/manifest.csv
    (read it with the `precomputed` reader) and CACHE/failures.csv; a rerun only
    computes what is missing. Exits with status 1 when a clip failed.
    With --executor ray the clips to compute run in batches as Ray tasks (on a local
    Ray of --workers x --threads CPUs, or the cluster at --address).
    """
    from msmmt.config import ConfigError
    from msmmt.core.records import DatasetError, SheetRowsError
    from msmmt.data.readers import DATASETS, IMAGE_DATASETS, read_dataset
    from msmmt.preprocess.batch import preprocess_dataset

    cfg = load_or_fail()
    if executor not in ("local", "ray"):
        raise fail(f"--executor {executor}: expected local or ray")
    if address is not None and executor != "ray":
        raise fail("--address needs --executor ray")
    if dataset in IMAGE_DATASETS or dataset not in DATASETS:
        choices = ", ".join(d for d in DATASETS if d not in IMAGE_DATASETS)
        raise fail(f"dataset {dataset!r}: expected one of {choices}")
    if not root.exists():
        raise fail(f"dataset root {root} does not exist")
    cache_dir = output_dir(out, "cache")
    rejected = []
    try:
        samples = read_dataset(dataset, root, _annotations(annotations))
    except SheetRowsError as err:  # go on with the good rows; the bad ones go to failures.csv
        typer.echo(f"warning: {err}", err=True)
        samples, rejected = err.samples, err.problems
    except (DatasetError, ValueError) as err:
        raise fail(str(err)) from None
    map_clips = None
    if executor == "ray":
        from msmmt.preprocess.ray_batch import RayClipMap

        map_clips = RayClipMap(address, workers, STATE.threads or 1, retries, batch_size)
    typer.echo(
        f"preprocessing {len(samples)} {dataset} clips -> {cache_dir} "
        f"({executor}, {workers} worker{'s' if workers != 1 else ''})"
    )
    try:
        summary = preprocess_dataset(
            samples, cfg.preprocess, cache_dir, workers=workers,
            progress=STATE.verbosity >= 0, map_clips=map_clips, rejected=rejected,
        )
    except ConfigError as err:
        raise fail(str(err)) from None
    typer.echo(str(summary))
    if summary.failed:
        raise typer.Exit(1)
