"""Subject bootstrap, paired bootstrap and seed spread against hand and independent computations."""

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from msmmt.engine.metrics import scores
from msmmt.evaluation.uncertainty import (
    RunPredictions,
    all_resamples,
    bootstrap_interval,
    metrics_of_confusions,
    noise_note,
    paired_difference,
    part_intervals,
    resample_counts,
    seed_spread,
    subject_confusions,
)


def _toy(seed=0, n_subjects=3, per_subject=(2, 4, 3), n_classes=3, p_correct=0.6):
    rng = np.random.default_rng(seed)
    subject, true, pred = [], [], []
    for s in range(n_subjects):
        for _ in range(per_subject[s % len(per_subject)]):
            t = int(rng.integers(n_classes))
            p = t if rng.random() < p_correct else int(rng.integers(n_classes))
            subject.append(f"s{s}")
            true.append(t)
            pred.append(p)
    return np.array(true), np.array(pred), np.array(subject)


def test_two_subjects_by_hand():
    # Subject a: one clip right; subject b: one clip wrong. The 4 ordered resamples have
    # accuracies 1 (aa), 0.5 (ab), 0.5 (ba), 0 (bb); numpy's linear quantiles of
    # [0, .5, .5, 1] at 2.5% / 97.5% are 0 + 0.075 * 0.5 and 0.5 + 0.925 * 0.5.
    run = RunPredictions.single([0, 1], [0, 0], ["a", "b"], 2)
    point, lo, hi = bootstrap_interval(run, exact=True)["acc"]
    assert point == 0.5
    assert lo == pytest.approx(0.0375)
    assert hi == pytest.approx(0.9625)


def test_exact_bootstrap_equals_enumerated_pooling():
    true, pred, subject = _toy()
    subjects = sorted(set(subject))
    expected = {"acc": [], "uar": [], "uf1": []}
    for draw in itertools.product(subjects, repeat=len(subjects)):
        rows = np.concatenate([np.flatnonzero(subject == s) for s in draw])
        t, p = true[rows], pred[rows]
        expected["acc"].append(accuracy_score(t, p))
        expected["uar"].append(recall_score(t, p, average="macro", labels=[0, 1, 2], zero_division=0))
        expected["uf1"].append(f1_score(t, p, average="macro", labels=[0, 1, 2], zero_division=0))
    got = bootstrap_interval(RunPredictions.single(true, pred, subject, 3), exact=True)
    for metric, values in expected.items():
        assert got[metric][1:] == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert got["uf1"][0] == pytest.approx(scores(true, pred, 3)["uf1"])


def test_confusions_and_metrics_match_the_engine():
    true, pred, subject = _toy(seed=3, n_subjects=5, p_correct=0.5)
    cm = subject_confusions(true, pred, subject, sorted(set(subject)), 3)
    assert cm.sum() == len(true)
    pooled = metrics_of_confusions(cm.sum(axis=0))
    ref = scores(true, pred, 3)
    for m in ("acc", "uar", "uf1"):
        assert float(pooled[m]) == pytest.approx(ref[m])


def test_resample_counts_are_draws_with_replacement():
    counts = resample_counts(7, n_boot=5000, seed=1)
    assert counts.shape == (5000, 7)
    assert (counts.sum(axis=1) == 7).all()
    assert counts.mean() == pytest.approx(1.0, abs=0.02)
    # P(a given subject is left out) = (6/7)^7
    assert (counts == 0).mean() == pytest.approx((6 / 7) ** 7, abs=0.01)
    assert np.array_equal(counts, resample_counts(7, n_boot=5000, seed=1))
    assert len(all_resamples(3)) == 27 and (all_resamples(3).sum(axis=1) == 3).all()


def test_interval_contains_point_on_typical_data():
    true, pred, subject = _toy(seed=5, n_subjects=30, per_subject=(1, 4, 9, 2))
    ci = bootstrap_interval(RunPredictions.single(true, pred, subject, 3), n_boot=1000, seed=2)
    for point, lo, hi in ci.values():
        assert lo < point < hi
        assert hi - lo < 0.5


def test_paired_difference_of_a_run_with_itself_is_zero():
    true, pred, subject = _toy(seed=1, n_subjects=12)
    run = RunPredictions.single(true, pred, subject, 3)
    d = paired_difference(run, run, n_boot=300)
    assert (d.difference, d.lo, d.hi) == (0.0, 0.0, 0.0)
    assert d.p_a_better == 0.5  # every resample a tie: neither run is better


def test_paired_difference_exact_equals_enumeration():
    true, pred_a, subject = _toy(seed=2)
    _, pred_b, _ = _toy(seed=7)
    subjects = sorted(set(subject))
    diffs = []
    for draw in itertools.product(subjects, repeat=len(subjects)):
        rows = np.concatenate([np.flatnonzero(subject == s) for s in draw])
        f = [f1_score(true[rows], p[rows], average="macro", labels=[0, 1, 2], zero_division=0)
             for p in (pred_a, pred_b)]
        diffs.append(f[0] - f[1])
    a = RunPredictions.single(true, pred_a, subject, 3)
    b = RunPredictions.single(true, pred_b, subject, 3)
    d = paired_difference(a, b, exact=True)
    assert (d.lo, d.hi) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    diffs = np.array(diffs)
    assert np.mean(diffs == 0) > 0  # ties occur here, and count half
    assert d.p_a_better == pytest.approx(np.mean(diffs > 0) + 0.5 * np.mean(diffs == 0))
    assert d.n_boot == 27


def test_paired_probabilities_of_the_two_orders_sum_to_one():
    true, pred_a, subject = _toy(seed=2)
    _, pred_b, _ = _toy(seed=7)
    a = RunPredictions.single(true, pred_a, subject, 3)
    b = RunPredictions.single(true, pred_b, subject, 3)
    ab, ba = paired_difference(a, b, exact=True), paired_difference(b, a, exact=True)
    assert ab.p_a_better + ba.p_a_better == pytest.approx(1.0)


def test_paired_interval_is_narrower_than_unpaired_for_correlated_runs():
    # B differs from A on a few clips only: subject difficulty is shared and cancels.
    true, pred_a, subject = _toy(seed=4, n_subjects=40, per_subject=(2, 6, 3))
    pred_b = pred_a.copy()
    flip = np.random.default_rng(0).choice(len(true), size=len(true) // 10, replace=False)
    pred_b[flip] = true[flip]
    a = RunPredictions.single(true, pred_a, subject, 3)
    b = RunPredictions.single(true, pred_b, subject, 3)
    d = paired_difference(b, a, n_boot=1000)
    ci_a = bootstrap_interval(a, n_boot=1000)["uf1"]
    assert d.difference > 0 and d.lo > 0  # B fixes errors only: better on every resample
    assert d.hi - d.lo < (ci_a[2] - ci_a[1]) / 2
    assert d.p_a_better > 0.99


def test_paired_difference_refuses_other_samples():
    true, pred, subject = _toy()
    a = RunPredictions.single(true, pred, subject, 3)
    b = RunPredictions.single(true[::-1], pred, subject, 3)
    with pytest.raises(ValueError, match="same samples"):
        paired_difference(a, b)


def test_several_seeds_average_per_resample():
    true, pred_a, subject = _toy(seed=2, n_subjects=10)
    _, pred_b, _ = _toy(seed=9, n_subjects=10)
    both = RunPredictions(true, np.stack([pred_a, pred_b]), subject, 3)
    got = bootstrap_interval(both, n_boot=200)
    ua = scores(true, pred_a, 3)["uf1"]
    ub = scores(true, pred_b, 3)["uf1"]
    assert got["uf1"][0] == pytest.approx((ua + ub) / 2)


def test_seed_spread_by_hand():
    s = seed_spread([0.6, 0.7, 0.8])
    assert s["mean"] == pytest.approx(0.7)
    assert s["sd"] == pytest.approx(0.1)
    assert (s["min"], s["max"], s["n"]) == (0.6, 0.8, 3)
    assert seed_spread([0.5])["sd"] == 0.0


def test_part_intervals_resample_each_part_alone():
    true, pred, subject = _toy(seed=6, n_subjects=8)
    classes = ("negative", "positive", "surprise")
    frame = pd.DataFrame({
        "key": [f"k{i}" for i in range(len(true))],
        "subject": subject,
        "dataset": np.where(np.isin(subject, ["s0", "s1", "s2"]), "casme2", "smic"),
        "true": [classes[i] for i in true],
        "predicted": [classes[i] for i in pred],
    })
    table = part_intervals([frame], classes, n_boot=200).set_index("part")
    assert list(table.index) == ["all", "casme2", "smic"]
    assert table.loc["casme2", "subjects"] == 3 and table.loc["all", "n"] == len(true)
    part = frame["dataset"] == "smic"
    assert table.loc["smic", "uf1"] == pytest.approx(scores(true[part], pred[part], 3)["uf1"])
    assert "±" in noise_note(442, 68, 0.58, 0.70) and "0.06" in noise_note(442, 68, 0.58, 0.70)
