"""Baselines against MSMMT under the same LOSO folds, with 95% intervals and paired differences.

On a synthetic set (``msmmt synth`` + ``msmmt preprocess`` with the ``demo`` preset, made
here unless ``--data`` names a preprocessed cache, e.g. a calibrated composite-like one),
runs leave-one-subject-out with each of

* ``svm``: RBF SVM on the 28 x 28 x 3 motion-image pixels (C=1, gamma=scale, balanced),
* ``logreg``: logistic regression on the same pixels,
* ``ststnet``: STSTNet, Adam 5e-5, batch 256, ``--ststnet-epochs`` epochs (the paper: 800),
* ``msmmt``: the MSMMT model of ``--config`` (default ``demo``),

through :func:`msmmt.evaluation.runner.run_folds` (one run folder each under ``--runs``,
resumable), then prints Acc / UAR / UF1 with 95% subject-bootstrap intervals, the paired
bootstrap of each run's UF1 minus the SVM's, and the mean training + scoring time per fold.

    .venv/bin/python benchmarks/bench_baselines.py                       # demo set, 8 x 6
    .venv/bin/python benchmarks/bench_baselines.py --subjects 16 --kinds svm logreg ststnet
    .venv/bin/python benchmarks/bench_baselines.py --data CACHE --config cpu-small --runs runs/b
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402

from msmmt.config import load_config  # noqa: E402
from msmmt.core.threads import limit_threads  # noqa: E402
from msmmt.data.readers import read_dataset, read_for_training  # noqa: E402
from msmmt.data.synthetic import generate  # noqa: E402
from msmmt.evaluation.comparison import compare_runs  # noqa: E402
from msmmt.evaluation.fit_predict import fit_predict_for  # noqa: E402
from msmmt.evaluation.report import write_report  # noqa: E402
from msmmt.evaluation.runner import run_folds  # noqa: E402
from msmmt.preprocess.batch import preprocess_dataset  # noqa: E402

KINDS = ("svm", "logreg", "ststnet", "msmmt")


def synthetic_cache(root: Path, subjects: int, clips: int, seed: int) -> Path:
    """Clips of the ``demo`` preset's synthetic set, preprocessed (reused when present)."""
    cache = root / "cache"
    if not (cache / "manifest.csv").is_file():
        generate(root / "data", subjects=subjects, clips_per_subject=clips, seed=seed, size=160)
        cfg = load_config("demo")
        preprocess_dataset(read_dataset("synthetic", root / "data"), cfg.preprocess, cache, 1, False)
    return cache


def run_kind(kind: str, args, cache: Path) -> Path:
    overrides = [f"seed={args.seed}"]
    if kind != "msmmt":
        overrides += [f"baseline.kind={kind}", f"baseline.epochs={args.ststnet_epochs}"]
    cfg = load_config(args.config, overrides)
    samples = read_for_training(args.dataset, cache, cfg.data)
    out = args.runs / kind
    run_folds(cfg, samples, out, fit_predict_for(cfg), progress=False)
    write_report(out)
    return out


def seconds_per_fold(run: Path) -> float:
    times = [json.loads(p.read_text())["seconds"] for p in (run / "folds").glob("*/done.json")]
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a preprocessed cache (default: synthesise one)")
    parser.add_argument("--dataset", default="precomputed", help="reader of --data")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--config", default="demo", help="preset of the msmmt run (and the data section)")
    parser.add_argument("--ststnet-epochs", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_baselines"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    limit_threads(args.threads)
    cache = args.data or synthetic_cache(args.runs / "synthetic", args.subjects, args.clips, args.seed)
    runs = [run_kind(kind, args, cache) for kind in args.kinds]
    # the SVM last, so that each pair reads (run, svm): UF1_run - UF1_svm
    c = compare_runs(sorted(runs, key=lambda r: r.name == "svm"), n_boot=args.n_boot)
    whole = c.table[c.table["part"] == "all"].set_index("run")
    pairs = c.pairs[c.pairs["part"] == "all"]
    rows = []
    for run in runs:
        r = whole.loc[run.name]
        row = {"model": run.name, "data": str(cache), "n": int(r["n"]), "subjects": int(r["subjects"])}
        for m in ("acc", "uar", "uf1"):
            row |= {m: r[m], f"{m}_lo": r[f"{m}_lo"], f"{m}_hi": r[f"{m}_hi"]}
        vs = pairs[(pairs["a"] == run.name) & (pairs["b"] == "svm")]
        p = vs.iloc[0] if len(vs) else {k: None for k in ("uf1_diff", "lo", "hi", "p_a_better")}
        row |= {"uf1_minus_svm": p["uf1_diff"], "diff_lo": p["lo"], "diff_hi": p["hi"],
                "p_better_than_svm": p["p_a_better"]}
        row |= {"s_per_fold": seconds_per_fold(run),
                "epochs": args.ststnet_epochs if run.name == "ststnet" else ""}
        rows.append(row)
    record("baselines", rows)


if __name__ == "__main__":
    main()
