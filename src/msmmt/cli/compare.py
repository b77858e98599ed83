"""``msmmt compare``: several runs side by side, with intervals and paired differences."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import app, check_folder, fail


@app.command()
def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run folders (msmmt loso --out), or folders of seed-<n> runs."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Also write comparison.md, runs.csv, pairs.csv and "
                     "comparison.png (a forest plot: UF1 and differences from the first run) here."),
    ] = None,
    n_boot: Annotated[int, typer.Option(min=100, metavar="N", help="Bootstrap resamples.")] = 2000,
) -> None:
    """Compare runs made on the same samples and folds: Acc / UAR / UF1 with 95%
    subject-bootstrap intervals (per part), the spread over seeds, and for each pair the
    paired bootstrap of the UF1 difference. Runs on other samples or folds are refused."""
    from msmmt.core.io import atomic_write_text
    from msmmt.core.records import DatasetError
    from msmmt.evaluation.comparison import (
        ComparisonError,
        against_first,
        compare_runs,
        comparison_markdown,
    )
    from msmmt.evaluation.figures import COMPARISON_PNG, plot_comparison

    if out is not None:
        check_folder(out)
    try:
        result = compare_runs(runs, n_boot=n_boot)
    except (ComparisonError, FileNotFoundError, DatasetError) as err:
        raise fail(str(err)) from None
    text = comparison_markdown(result)
    typer.echo(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "comparison.md", "# Comparison\n\n" + text)
        atomic_write_text(out / "runs.csv", result.table.to_csv(index=False))
        atomic_write_text(out / "pairs.csv", result.pairs.to_csv(index=False))
        plot_comparison(against_first(result), out / COMPARISON_PNG)
        typer.echo(f"-> {out}")
