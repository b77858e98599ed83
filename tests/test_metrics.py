"""Acc / UAR / UF1 against scikit-learn, including classes absent from a fold or the pooled set."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from msmmt.engine.metrics import confusion, per_class, scores, scores_by_group


def _sklearn(y_true, y_pred, c):
    labels = list(range(c))
    return {
        "acc": accuracy_score(y_true, y_pred),
        "uar": recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "uf1": f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
    }


def _assert_match(y_true, y_pred, c):
    ours = scores(y_true, y_pred, c)
    ref = _sklearn(y_true, y_pred, c)
    for k in ("acc", "uar", "uf1"):
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k
    assert ours["n"] == len(y_true)


@pytest.mark.parametrize("seed", range(20))
def test_scores_match_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    y_true = rng.integers(0, c, n)
    # mostly-right predictions so the scores are not all near chance
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, c, n))
    _assert_match(y_true, y_pred, c)
    np.testing.assert_array_equal(
        confusion(y_true, y_pred, c), sk_confusion(y_true, y_pred, labels=list(range(c)))
    )


def test_class_absent_from_pooled_truth_but_predicted():
    # class 2 never occurs in the truth but is predicted once: recall and F1 of class 2 are 0
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 2, 1, 1, 0])
    _assert_match(y_true, y_pred, 3)
    s = scores(y_true, y_pred, 3)
    # by hand: recall = (1/2 + 2/3 + 0) / 3; F1_0 = 2/(2+1+1), F1_1 = 4/(4+0+1), F1_2 = 0
    assert s["uar"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert s["uf1"] == pytest.approx((0.5 + 0.8) / 3)
    assert s["acc"] == pytest.approx(3 / 5)


def test_class_absent_from_truth_and_predictions_counts_as_zero():
    y_true = np.array([0, 1, 1, 0])
    y_pred = np.array([0, 1, 1, 0])
    _assert_match(y_true, y_pred, 3)
    s = scores(y_true, y_pred, 3)
    assert s["acc"] == 1.0
    assert s["uar"] == pytest.approx(2 / 3)
    assert s["uf1"] == pytest.approx(2 / 3)


def test_pooled_over_folds_where_one_fold_lacks_a_class():
    rng = np.random.default_rng(7)
    folds = []
    for i in range(6):
        n = int(rng.integers(2, 8))
        classes = [0, 1] if i == 2 else [0, 1, 2]  # fold 2 lacks class 2
        t = rng.choice(classes, n)
        p = np.where(rng.random(n) < 0.5, t, rng.integers(0, 3, n))
        folds.append((t, p))
    t = np.concatenate([f[0] for f in folds])
    p = np.concatenate([f[1] for f in folds])
    _assert_match(t, p, 3)
    # the fold without class 2, scored alone, also matches scikit-learn's convention
    _assert_match(*folds[2], 3)
    # pooling is not the mean of the per-fold scores
    mean_uf1 = np.mean([scores(ft, fp, 3)["uf1"] for ft, fp in folds])
    assert scores(t, p, 3)["uf1"] != pytest.approx(mean_uf1)


def test_per_class_values_by_hand():
    m = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 0]])
    pc = per_class(m)
    np.testing.assert_allclose(pc["recall"], [0.75, 0.5, 0.0])
    np.testing.assert_allclose(pc["precision"], [0.6, 2 / 3, 0.0])
    np.testing.assert_allclose(pc["f1"], [6 / 9, 4 / 7, 0.0])
    np.testing.assert_array_equal(pc["support"], [4, 4, 0])


def test_scores_by_group_scores_each_part_over_all_classes():
    rng = np.random.default_rng(3)
    n = 90
    t = rng.integers(0, 3, n)
    p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 3, n))
    g = rng.choice(["smic", "casme2", "samm"], n)
    parts = scores_by_group(t, p, g, 3)
    assert list(parts) == ["casme2", "samm", "smic"]
    for name, s in parts.items():
        ref = _sklearn(t[g == name], p[g == name], 3)
        assert s["uf1"] == pytest.approx(ref["uf1"])
        assert s["uar"] == pytest.approx(ref["uar"])
        assert s["n"] == int((g == name).sum())


def test_empty_set_gives_nan_and_bad_input_is_rejected():
    s = scores(np.array([], dtype=int), np.array([], dtype=int), 3)
    assert s["n"] == 0 and np.isnan(s["uf1"])
    with pytest.raises(ValueError, match="outside 0..2"):
        scores([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="differ in length"):
        scores([0, 1], [0], 3)
    with pytest.raises(ValueError, match="integer"):
        scores([0.0, 1.0], [0, 1], 3)
