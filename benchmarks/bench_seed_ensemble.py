"""A seed ensemble's LOSO run (``model.members = K``) assembled from K finished single runs.

Member k of an ensemble trained with seed s is exactly the single network of seed
``s + 1000 k`` (:func:`msmmt.model.ensemble.member_seed`; tested weight for weight in
``tests/test_ensemble.py``), and the pixel head depends on the pixels only, so the ensemble's
fold predictions are the mean of the K runs' ViT probabilities (``vit_p_*``) blended with the
pixel head's (``pixel_p_*``, identical in every run). This script checks that the runs are
such members (same config but the seed, same folds and test clips, same pixel head
probabilities) and writes the ensemble's run: a copy of the first run with ``model.members: K``
in its config, the fold predictions replaced, the members' histories (with ``member``) and
each fold's time the sum of the runs', and a
line in ``ENSEMBLE.txt`` saying so, which ``msmmt compare OUT OUT:vit RUN0 ...`` reads like
any run. It trains nothing: the K runs cost what ``model.members = K`` would.

    .venv/bin/python benchmarks/bench_seed_ensemble.py runs/loso_seed0 runs/loso_seed1000 \
        --out runs/loso_members2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from msmmt.config import load_config
from msmmt.core.labels import class_names
from msmmt.model.ensemble import member_seed
from msmmt.model.pixel_head import blend


def _check_members(runs: list[Path]):
    """The runs' configs (as member k of the first's seed); raises if they are not members."""
    configs = [load_config(run / "config.yaml") for run in runs]
    first = configs[0]
    for k, (run, cfg) in enumerate(zip(runs, configs, strict=True)):
        if cfg.seed != member_seed(first.seed, k):
            raise SystemExit(f"{run}: seed {cfg.seed}, member {k} needs {member_seed(first.seed, k)}")
        if cfg.model_copy(update={"seed": first.seed}) != first:
            raise SystemExit(f"{run}: its config differs from {runs[0]}'s beyond the seed")
        if cfg.model.members != 1:
            raise SystemExit(f"{run}: already an ensemble (model.members {cfg.model.members})")
    return first


def _fold_tables(run: Path) -> dict[str, pd.DataFrame]:
    return {
        path.parent.name: pd.read_csv(path, dtype={"key": str})
        for path in sorted((run / "folds").glob("*/predictions.csv"))
    }


def assemble(runs: list[Path], out: Path) -> int:
    cfg = _check_members(runs)
    classes = class_names(cfg.data.class_set)
    vit_cols = [f"vit_p_{c}" for c in classes]
    pixel_cols = [f"pixel_p_{c}" for c in classes]
    tables = [_fold_tables(run) for run in runs]
    if any(set(t) != set(tables[0]) for t in tables):
        raise SystemExit("the runs have different (or unfinished) folds")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(runs[0], out)
    for stale in [*out.glob("*.png"), *out.glob("status*.csv"), *out.glob("progress*.json"),
                  out / "report.md", out / "metrics.csv", out / "predictions.csv"]:
        stale.unlink(missing_ok=True)  # the first run's pooled outputs and times
    status = pd.concat(pd.read_csv(f) for run in runs for f in sorted(run.glob("status*.csv")))
    status = status[status.state == "done"].groupby("fold", as_index=False).agg(
        state=("state", "first"), node=("node", "first"), attempt=("attempt", "max"),
        seconds=("seconds", "sum"), error=("error", "first"),
    )
    status.to_csv(out / "status.csv", index=False)  # a fold's time: its members' times summed
    text = yaml.safe_load((out / "config.yaml").read_text())
    text["model"]["members"] = len(runs)
    (out / "config.yaml").write_text(yaml.safe_dump(text, sort_keys=False))
    (out / "ENSEMBLE.txt").write_text(
        "seed ensemble assembled by benchmarks/bench_seed_ensemble.py from: "
        + ", ".join(str(r) for r in runs) + "\n"
    )
    for fold, table in tables[0].items():
        others = [t[fold] for t in tables[1:]]
        for other in others:
            if list(other["key"]) != list(table["key"]):
                raise SystemExit(f"fold {fold}: the runs tested different clips")
            if not np.allclose(other[pixel_cols], table[pixel_cols], atol=1e-9):
                raise SystemExit(f"fold {fold}: the runs' pixel heads differ")
        vit = np.mean([t[vit_cols].to_numpy() for t in (table, *others)], axis=0)
        pixel = table[pixel_cols].to_numpy()
        mixed = blend(vit, pixel, cfg.model.pixel_blend)
        for j, c in enumerate(classes):
            table[f"p_{c}"], table[f"vit_p_{c}"] = mixed[:, j], vit[:, j]
        table["predicted"] = [classes[i] for i in mixed.argmax(axis=1)]
        table.to_csv(out / "folds" / fold / "predictions.csv", index=False)
        history = pd.concat(
            pd.read_csv(run / "folds" / fold / "history.csv").assign(member=k + 1)
            for k, run in enumerate(runs)
        )
        columns = ["member", *[c for c in history.columns if c != "member"]]
        history[columns].to_csv(out / "folds" / fold / "history.csv", index=False)
        done = [json.loads((run / "folds" / fold / "done.json").read_text()) for run in runs]
        summed = done[0] | {"seconds": round(sum(d["seconds"] for d in done), 3)}
        (out / "folds" / fold / "done.json").write_text(json.dumps(summed, indent=1))
    return len(tables[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="Finished runs of seeds s, s + 1000, ...")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    n = assemble(args.runs, args.out)
    print(f"{n} folds of a {len(args.runs)}-member ensemble -> {args.out}")


if __name__ == "__main__":
    main()
