"""Several runs side by side, with intervals, seed spreads and paired differences.

A *run* here is either one run directory (written by
:func:`msmmt.evaluation.runner.run_folds`) or a folder of seeds ``RUN/seed-<n>/``, each a
run directory of the same samples and folds (``msmmt loso --seeds``). Runs are only
compared when they predict the same samples under the same fold plan; anything else is
refused with :class:`ComparisonError`. See ``docs/METHOD.md``, "Uncertainty".

For each run and part: Acc / UAR / UF1 (the mean over seeds) with the 95% subject-bootstrap
interval of that mean, and, with several seeds, the mean, standard deviation, minimum and
maximum of the seeds' UF1. For each pair of runs, the paired bootstrap of the UF1
difference (same subject resamples for both) and the fraction of resamples where the
first is better. Runs whose folds were computed in different environments (library versions,
CPU, threads, msmmt's commit: :mod:`msmmt.core.environment`) are compared all the same, and
the comparison names the entries in which they differ.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from msmmt.core.environment import consensus, describe_varying, varying
from msmmt.core.io import atomic_write_text
from msmmt.engine.metrics import scores
from msmmt.evaluation.results import RunResults, load_run, select_component
from msmmt.evaluation.runner import CONFIG_FILE, PLAN_FILE, SAMPLES_FILE
from msmmt.evaluation.uncertainty import (
    N_BOOT,
    noise_note,
    paired_difference,
    part_intervals,
    run_predictions,
    seed_spread,
)

__all__ = [
    "SEED_PREFIX",
    "SEEDS_REPORT",
    "Comparison",
    "ComparisonError",
    "RunGroup",
    "against_first",
    "compare_runs",
    "comparison_markdown",
    "load_group",
    "seed_dirs",
    "write_seed_summary",
]

SEED_PREFIX = "seed-"
SEEDS_REPORT = "seeds.md"


class ComparisonError(ValueError):
    """Runs that cannot be compared (other samples or folds, unfinished, not runs)."""


@dataclass
class RunGroup:
    """One run: one or several seeds of the same samples and folds."""

    name: str
    path: Path
    seeds: list[RunResults]
    component: str | None = None
    """``vit`` / ``pixel``: one part of a blended model's predictions (``RUN:vit``)."""

    @property
    def model(self) -> str:
        model = self.seeds[0].config.baseline.describe()
        return model if self.component is None else f"{model} ({self.component} part)"


def seed_dirs(path: str | Path) -> list[Path]:
    """The run directories ``path/seed-<n>`` (sorted by n), empty if there are none."""
    found = [
        d for d in Path(path).glob(f"{SEED_PREFIX}*")
        if d.is_dir() and re.fullmatch(rf"{SEED_PREFIX}\d+", d.name) and (d / CONFIG_FILE).is_file()
    ]
    return sorted(found, key=lambda d: int(d.name[len(SEED_PREFIX):]))


def _same_files(a: Path, b: Path) -> str | None:
    """The first of samples.csv / folds.csv in which two run directories differ, or None."""
    for f in (SAMPLES_FILE, PLAN_FILE):
        if (a / f).read_text() != (b / f).read_text():
            return f
    return None


def load_group(path: str | Path, name: str | None = None) -> RunGroup:
    """A run directory, or a folder of ``seed-<n>`` run directories; every fold finished.

    ``RUN:vit`` / ``RUN:pixel`` (a path that does not exist, ending in ``:<part>``) is
    one component of a blended model's run (:func:`msmmt.evaluation.results.select_component`).
    """
    path, component = Path(path), None
    if not path.exists() and ":" in path.name:
        stem, component = path.name.rsplit(":", 1)
        path = path.with_name(stem)
    dirs = [path] if (path / CONFIG_FILE).is_file() else seed_dirs(path)
    if not dirs:
        raise ComparisonError(f"{path}: not a run directory (no {CONFIG_FILE}) nor a folder "
                              f"of {SEED_PREFIX}<n> runs; run `msmmt loso` first")
    seeds = []
    for d in dirs:
        results = load_run(d)
        left = [f for f, s in results.status.items() if s != "done"]
        if left:
            raise ComparisonError(f"{d}: {len(left)} of {len(results.status)} folds are not "
                                  f"finished (e.g. {left[0]}); finish the run first")
        differs = _same_files(dirs[0], d)
        if differs:
            raise ComparisonError(f"{d}: its {differs} differs from {dirs[0]}'s; the seeds of a "
                                  "run must share the samples and folds")
        seeds.append(results if component is None else select_component(results, component))
    return RunGroup(name or path.name, path, seeds, component)


def _check_comparable(groups: Sequence[RunGroup]) -> None:
    seen: set[tuple[Path, str | None]] = set()
    for g in groups:
        key = (g.path.resolve(), g.component)
        if key in seen:
            given = f"{g.path}:{g.component}" if g.component else str(g.path)
            raise ComparisonError(f"{given} is given twice; a run compared with itself ties on "
                                  "every resample")
        seen.add(key)
    first = groups[0]
    for g in groups[1:]:
        differs = _same_files(first.seeds[0].run_dir, g.seeds[0].run_dir)
        if differs:
            what = "samples" if differs == SAMPLES_FILE else "folds"
            raise ComparisonError(
                f"{first.path} and {g.path} were run on different {what} ({differs} differs): "
                "scores on other samples or folds are not comparable; rerun them on the same "
                "data with the same eval.protocol (and seed for kfold)"
            )
        if g.seeds[0].classes != first.seeds[0].classes:
            raise ComparisonError(f"{g.path} and {first.path} use different class sets")


@dataclass
class Comparison:
    table: pd.DataFrame
    """One row per (run, part): model, seeds, n, subjects, metrics with ``_lo`` / ``_hi``,
    and ``uf1_sd`` / ``uf1_min`` / ``uf1_max`` over seeds."""
    pairs: pd.DataFrame
    """One row per (pair of runs, part): ``uf1_diff`` (a - b), ``lo``, ``hi``, ``p_a_better``."""
    n_boot: int
    environments: list[str] = field(default_factory=list)
    """How the runs' environments differ, one line per entry (empty: they agree)."""


def _group_environment(group: RunGroup) -> dict[str, str] | None:
    """The environment of a run's finished folds (all seeds), ``mixed`` where they differ;
    None when no fold recorded one."""
    envs = {f"{i}/{fold}": env for i, r in enumerate(group.seeds) for fold, env in r.environments.items()}
    return consensus(envs, mixed="mixed")


def _group_rows(group: RunGroup, n_boot: int, seed: int) -> list[dict]:
    frames = [r.predictions for r in group.seeds]
    classes = group.seeds[0].classes
    ci = part_intervals(frames, classes, n_boot, seed)
    rows = []
    for row in ci.to_dict(orient="records"):
        part = row["part"]
        per_seed = []
        for f in frames:
            sub = f if part == "all" else f[f["dataset"] == part]
            idx = {c: i for i, c in enumerate(classes)}
            per_seed.append(scores(sub["true"].map(idx).to_numpy(), sub["predicted"].map(idx).to_numpy(),
                                   len(classes))["uf1"])
        spread = seed_spread(per_seed)
        rows.append({"run": group.name, "model": group.model, "seeds": len(frames), **row,
                     "uf1_sd": spread["sd"], "uf1_min": spread["min"], "uf1_max": spread["max"]})
    return rows


def _part_frames(group: RunGroup, part: str) -> list[pd.DataFrame]:
    return [r.predictions if part == "all" else r.predictions[r.predictions["dataset"] == part]
            for r in group.seeds]


def _pair_rows(a: RunGroup, b: RunGroup, parts: Sequence[str], n_boot: int, seed: int) -> list[dict]:
    classes = a.seeds[0].classes
    rows = []
    for part in parts:
        fa = _part_frames(a, part)
        order = fa[0]["key"]
        fb = [f.set_index("key").loc[order].reset_index() for f in _part_frames(b, part)]
        d = paired_difference(run_predictions(fa, classes), run_predictions(fb, classes),
                              "uf1", n_boot, seed)
        rows.append({"a": a.name, "b": b.name, "part": part, "uf1_diff": d.difference,
                     "lo": d.lo, "hi": d.hi, "p_a_better": d.p_a_better})
    return rows


def compare_runs(
    paths: Sequence[str | Path], n_boot: int = N_BOOT, seed: int = 0
) -> Comparison:
    """Load the runs at ``paths`` (run directories or seed folders) and compare them."""
    if not paths:
        raise ComparisonError("no runs to compare")
    names = _names([Path(p) for p in paths])
    groups = [load_group(p, n) for p, n in zip(paths, names, strict=True)]
    _check_comparable(groups)
    rows = [r for g in groups for r in _group_rows(g, n_boot, seed)]
    table = pd.DataFrame(rows)
    parts = list(dict.fromkeys(table["part"]))
    pairs = [r for a, b in itertools.combinations(groups, 2) for r in _pair_rows(a, b, parts, n_boot, seed)]
    columns = ["a", "b", "part", "uf1_diff", "lo", "hi", "p_a_better"]
    spread = varying({g.name: _group_environment(g) for g in groups})
    return Comparison(table, pd.DataFrame(pairs, columns=columns), n_boot,
                      describe_varying(spread, "run"))


def against_first(c: Comparison, part: str = "all") -> pd.DataFrame:
    """Each run's UF1 on ``part`` with its interval, and its paired difference from the first run.

    Columns ``run``, ``uf1``, ``uf1_lo``, ``uf1_hi`` (from ``c.table``) and ``diff``, ``diff_lo``,
    ``diff_hi``: ``UF1_run - UF1_first`` with its paired 95% interval, read from the pair
    (first, run) of ``c.pairs`` as ``-(first - run)``, bounds swapped; 0 for the first run.
    """
    runs = c.table.loc[c.table["part"] == part, ["run", "uf1", "uf1_lo", "uf1_hi"]]
    runs = runs.reset_index(drop=True)
    first = runs["run"].iloc[0]
    pairs = c.pairs[(c.pairs["part"] == part) & (c.pairs["a"] == first)].set_index("b")
    others = pairs.reindex(runs["run"].iloc[1:])
    runs["diff"] = [0.0, *(-others["uf1_diff"])]
    runs["diff_lo"] = [0.0, *(-others["hi"])]
    runs["diff_hi"] = [0.0, *(-others["lo"])]
    return runs


def _names(paths: Sequence[Path]) -> list[str]:
    """Folder names, or parent/name where two runs share a folder name."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _ci(row: dict, m: str) -> str:
    return f"{row[m]:.4f} [{row[f'{m}_lo']:.3f}, {row[f'{m}_hi']:.3f}]"


def comparison_markdown(c: Comparison) -> str:
    """The comparison as Markdown tables, with how to read them."""
    out = ["## Runs", "",
           "| run | part | seeds | n | Acc [95% CI] | UAR [95% CI] | UF1 [95% CI] | UF1 over seeds |",
           "|---|---|---|---|---|---|---|---|"]
    for r in c.table.to_dict(orient="records"):
        spread = (f"sd {r['uf1_sd']:.4f}, {r['uf1_min']:.4f}..{r['uf1_max']:.4f}"
                  if r["seeds"] > 1 else "–")
        out.append(f"| {r['run']} | {r['part']} | {r['seeds']} | {r['n']} | {_ci(r, 'acc')} | "
                   f"{_ci(r, 'uar')} | {_ci(r, 'uf1')} | {spread} |")
    out += [""] + [f"- `{name}`: {model}" for name, model in
                   dict(zip(c.table["run"], c.table["model"], strict=True)).items()]
    first = c.table.iloc[0]
    out += ["", f"Intervals: 95% percentile bootstrap over subjects ({c.n_boot} resamples); with "
            "several seeds, the score is the mean over seeds and the interval that of the mean. "
            + noise_note(int(first["n"]), int(first["subjects"]), first["uf1_lo"], first["uf1_hi"]),
            ""]
    if len(c.pairs):
        out += ["## Paired differences (same folds, same subject resamples for both runs)", "",
                "| A | B | part | UF1 A - B [95% CI] | P(A > B) |", "|---|---|---|---|---|"]
        for p in c.pairs.to_dict(orient="records"):
            out.append(f"| {p['a']} | {p['b']} | {p['part']} | {p['uf1_diff']:+.4f} "
                       f"[{p['lo']:+.3f}, {p['hi']:+.3f}] | {p['p_a_better']:.3f} |")
        out += ["", "An interval that excludes 0 (P(A > B) near 0 or 1) is a difference beyond "
                "the subject sampling noise of this data set; one that straddles 0 is not. Resamples "
                "where A and B tie count half to P(A > B).", ""]
    if c.environments:
        out += ["## Environments", "", "The runs were not all computed in the same environment "
                "(`done.json` of their folds); their differences may include the effect of:", ""]
        out += [f"- {line}" for line in c.environments] + [""]
    return "\n".join(out)


def write_seed_summary(path: str | Path, n_boot: int = N_BOOT) -> Path:
    """Write ``path/seeds.md``: the seeds of one run summarised (:func:`comparison_markdown`)."""
    c = compare_runs([path], n_boot)
    text = f"# Seeds of `{Path(path).name}`\n\n" + comparison_markdown(c)
    return atomic_write_text(Path(path) / SEEDS_REPORT, text)
