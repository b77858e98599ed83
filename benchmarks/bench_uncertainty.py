"""Does the subject bootstrap mean what it says? Coverage and false-positive rate by simulation.

A population of subjects shaped like the MEGC2019 composite (clips per subject 1 to 39,
median about 4; class imbalance 250 / 109 / 83; each subject with its own class mix and its
own difficulty) is scored by a simulated classifier. The population UF1 is the UF1 pooled
over 20000 subjects. Each replication draws a composite-sized set of 68 subjects and computes

* the 95% subject-bootstrap interval (:func:`msmmt.evaluation.uncertainty.bootstrap_interval`)
  and, for contrast, a clip-level bootstrap that ignores subjects;
* for two classifiers of *equal* population quality, the paired bootstrap of the UF1
  difference: its interval should exclude 0 in about 5% of replications.

It prints coverage (the fraction of intervals holding the population UF1; 0.95 is right),
the mean width, and the false-positive rate of the paired comparison.

    .venv/bin/python benchmarks/bench_uncertainty.py --reps 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402

from msmmt.engine.metrics import scores  # noqa: E402
from msmmt.evaluation.uncertainty import (  # noqa: E402
    RunPredictions,
    bootstrap_interval,
    paired_difference,
)

CLASS_SHARE = np.array([250, 109, 83]) / 442


def population(rng, n_subjects: int, skill: float, spread: float):
    """Per subject: clip count, class mix and log-odds of a correct prediction."""
    sizes = np.clip(np.rint(np.exp(rng.normal(np.log(4.5), 0.9, n_subjects))), 1, 39).astype(int)
    mixes = rng.dirichlet(3.0 * CLASS_SHARE * 3, n_subjects)
    logits = rng.normal(skill, spread, n_subjects)
    return sizes, mixes, logits


def predictions(rng, sizes, mixes, logits, subjects):
    """Labels and two independent classifiers' predictions (same skill) for ``subjects``."""
    true, subject, preds = [], [], [[], []]
    for s in subjects:
        t = rng.choice(3, size=sizes[s], p=mixes[s])
        true.append(t)
        subject.append(np.full(sizes[s], s))
        p_right = 1.0 / (1.0 + np.exp(-logits[s]))
        for out in preds:
            wrong = (t + rng.integers(1, 3, sizes[s])) % 3
            out.append(np.where(rng.random(sizes[s]) < p_right, t, wrong))
    cat = np.concatenate
    return cat(true), cat(subject), cat(preds[0]), cat(preds[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--subjects", type=int, default=68)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0, help="SD of subject difficulty (log-odds)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sizes, mixes, logits = population(rng, 20000, 1.0, args.spread)
    t, _, p, _ = predictions(rng, sizes, mixes, logits, range(20000))
    truth = scores(t, p, 3)["uf1"]
    hits = {"subject": [], "clip": []}
    widths = {"subject": [], "clip": []}
    false_pos, clips = [], []
    for rep in range(args.reps):
        chosen = rng.choice(20000, size=args.subjects, replace=False)
        t, subj, pa, pb = predictions(rng, sizes, mixes, logits, chosen)
        clips.append(len(t))
        for name, groups in (("subject", subj), ("clip", np.arange(len(t)))):
            _, lo, hi = bootstrap_interval(RunPredictions.single(t, pa, groups, 3), args.n_boot, rep)["uf1"]
            hits[name].append(lo <= truth <= hi)
            widths[name].append(hi - lo)
        d = paired_difference(RunPredictions.single(t, pa, subj, 3),
                              RunPredictions.single(t, pb, subj, 3), n_boot=args.n_boot, seed=rep)
        false_pos.append(not d.lo <= 0.0 <= d.hi)
    rows = [
        {"interval": f"{name} bootstrap", "reps": args.reps, "subjects": args.subjects,
         "mean_clips": float(np.mean(clips)), "population_uf1": truth,
         "coverage": float(np.mean(hits[name])), "mean_width": float(np.mean(widths[name])),
         "paired_false_positive": float(np.mean(false_pos)) if name == "subject" else None}
        for name in ("subject", "clip")
    ]
    record("uncertainty", rows)


if __name__ == "__main__":
    main()
