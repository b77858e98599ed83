"""Printing a run's scores in the terminal (``msmmt loso``, ``report``, ``demo``)."""

from __future__ import annotations

from pathlib import Path

from msmmt.cli.app import STATE
from msmmt.config import departures_from_paper
from msmmt.evaluation.report import environment_warning, format_ci, format_score, write_report
from msmmt.evaluation.results import RunResults, load_run, metrics_table, paper_figure

__all__ = ["print_scores", "write_and_print_report"]


def print_scores(results: RunResults) -> None:
    """The pooled scores (and the paper's figures where comparable) as a rich table,
    then how the config departs from the paper's method, and whether the folds ran in
    different environments."""
    from rich.console import Console
    from rich.table import Table

    done, n = len(results.folds("done")), len(results.status)
    t = Table(title=f"{done}/{n} folds done, pooled predictions", caption=str(results.run_dir))
    for col in ("part", "n", "Acc [95% CI]", "UAR [95% CI]", "UF1 [95% CI]", "paper UF1",
                "paper UAR"):
        t.add_column(col, justify="left" if col == "part" else "right")
    for row in metrics_table(results).itertuples():
        t.add_row(
            row.part, str(row.n), format_ci(row, "acc"), format_ci(row, "uar"),
            format_ci(row, "uf1"), format_score(paper_figure(results, row.part, "uf1")),
            format_score(paper_figure(results, row.part, "uar")),
        )
    console = Console()
    console.print(t)
    departures = departures_from_paper(results.config)
    if departures:
        console.print("Not the paper's method: departs from the `paper` preset in", style="bold")
        for line in departures:
            console.print(f"  {line}", markup=False, highlight=False)
    warning = environment_warning(results)
    if warning:
        console.print(warning[0], style="bold")
        for line in warning[1:]:
            console.print(f"  {line}", markup=False, highlight=False)


def write_and_print_report(run: Path) -> Path:
    """Write the run's report; print its scores unless ``--quiet``. report.md's path."""
    path = write_report(run)
    if STATE.verbosity >= 0:
        print_scores(load_run(run))
    return path
