"""Candidates for the ``cpu-small`` preset against it and the baselines, under the same folds.

Collects finished run folders (``msmmt loso --out RUNS/<name>``, all with the same
``seed``, ``eval.protocol`` and ``eval.k``, so the folds are identical) and the output of
``msmmt compare RUNS/... -o CMP`` made from them, and writes one row per run to
``benchmarks/results/cpu_small_candidates.csv``: the overrides that made it, the protocol,
Acc / UAR / UF1 with 95% subject-bootstrap intervals, the paired bootstrap of its UF1 minus
the reference run's (``--ref``, the current cpu-small) with P(better), the mean seconds per
fold (``status.csv``) and the mean training accuracy at the last epoch over the folds
(``folds/*/history.csv``). The runs are made by the shell commands in
``benchmarks/results/cpu_small_candidates.md``.

    .venv/bin/python benchmarks/bench_cpu_small_candidates.py --runs runs --compare runs/cmp \
        --ref base base=- svm=baseline.kind=svm motion='model.modalities=[motion]'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402


def _protocol(run: Path) -> str:
    ev = yaml.safe_load((run / "config.yaml").read_text()).get("eval", {})
    if ev.get("protocol") == "kfold":
        return f"subject-grouped {ev.get('k')}-fold"
    return str(ev.get("protocol"))


def _final_train_acc(run: Path) -> float | None:
    last = [
        pd.read_csv(h).iloc[-1]
        for h in sorted(run.glob("folds/*/history.csv"))
        if h.stat().st_size > 1
    ]
    accs = [row["train_acc"] for row in last if "train_acc" in row]
    return float(sum(accs) / len(accs)) if accs else None


def _pair(pairs: pd.DataFrame, name: str, ref: str) -> tuple[float | None, str, float | None]:
    """UF1(name) - UF1(ref) with its interval and P(name better), from either pair order."""
    p = pairs[(pairs.part == "all") & (pairs.a == name) & (pairs.b == ref)]
    if len(p):
        r = p.iloc[0]
        return r.uf1_diff, f"[{r.lo:+.3f}, {r.hi:+.3f}]", r.p_a_better
    p = pairs[(pairs.part == "all") & (pairs.a == ref) & (pairs.b == name)]
    if len(p):
        r = p.iloc[0]
        return -r.uf1_diff, f"[{-r.hi:+.3f}, {-r.lo:+.3f}]", 1.0 - r.p_a_better
    return None, "", None


def row(
    run: Path, overrides: str, runs: pd.DataFrame, pairs: pd.DataFrame, ref: str
) -> dict[str, object]:
    r = runs[(runs.run == run.name) & (runs.part == "all")].iloc[0]
    diff, diff_ci, p_better = _pair(pairs, run.name, ref)
    folder = run.with_name(run.name.split(":")[0])  # RUN:vit is a part of RUN's predictions
    status = pd.concat(pd.read_csv(f) for f in sorted(folder.glob("status*.csv")))  # shards too
    seconds = status.loc[status.state == "done", "seconds"].mean()
    return {
        "name": run.name,
        "overrides": overrides,
        "protocol": _protocol(folder),
        "uf1": float(r.uf1),
        "uf1_ci": f"[{r.uf1_lo:.3f}, {r.uf1_hi:.3f}]",
        "uar": float(r.uar),
        "acc": float(r.acc),
        f"uf1_minus_{ref}": diff,
        "diff_ci": diff_ci,
        "p_better": p_better,
        "s_per_fold": float(seconds),
        "final_train_acc": _final_train_acc(folder),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="Folder of the run folders.")
    ap.add_argument("--compare", type=Path, required=True, help="msmmt compare -o folder.")
    ap.add_argument("--ref", default="base", help="Run the paired differences are taken against.")
    ap.add_argument(
        "--name", default="cpu_small_candidates", help="Results file: results/<name>.csv."
    )
    ap.add_argument("named", nargs="+", help="NAME=OVERRIDES (semicolon-separated), '-' for none; NAME:vit / NAME:pixel for a part of a blended run.")
    args = ap.parse_args()
    runs = pd.read_csv(args.compare / "runs.csv")
    pairs = pd.read_csv(args.compare / "pairs.csv")
    rows = []
    for item in args.named:
        name, _, overrides = item.partition("=")
        rows.append(
            row(args.runs / name, overrides if overrides != "-" else "", runs, pairs, args.ref)
        )
    record(args.name, rows)


if __name__ == "__main__":
    main()
