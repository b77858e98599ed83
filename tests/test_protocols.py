"""LOSO / grouped K-fold construction, validation split by subject, and the leakage guard."""

from collections import Counter

import numpy as np
import pytest

from msmmt.core.records import DatasetError, Sample
from msmmt.evaluation.protocols import (
    Fold,
    LeakageError,
    check_no_leak,
    fold_name,
    group_kfold,
    loso_folds,
    validation_split,
)


def make_samples(counts: dict[str, int]) -> list[Sample]:
    """``counts`` maps subject id -> number of clips."""
    out = []
    for subject, n in counts.items():
        dataset = subject.split("/")[0]
        for i in range(n):
            out.append(Sample(dataset, subject, f"clip{i:02d}", "negative"))
    return out


COUNTS = {"casme2/sub01": 3, "casme2/sub02": 1, "smic/s3": 5, "samm/006": 2, "samm/007": 4}


def _subjects(keys, samples):
    of = {s.key: s.subject for s in samples}
    return {of[k] for k in keys}


def test_loso_one_fold_per_subject_disjoint_and_each_sample_tested_once():
    samples = make_samples(COUNTS)
    folds = loso_folds(samples)
    assert [f.name for f in folds] == sorted(fold_name(s) for s in COUNTS)
    assert [f.name for f in folds] == sorted(f.name for f in folds)
    tested = Counter(k for f in folds for k in f.test_keys)
    assert set(tested) == {s.key for s in samples}
    assert set(tested.values()) == {1}
    for f in folds:
        test_subj = _subjects(f.test_keys, samples)
        assert len(test_subj) == 1
        assert not test_subj & _subjects(f.train_keys, samples)
        assert len(f.train_keys) + len(f.test_keys) == len(samples)
        check_no_leak(f, samples)


def test_fold_names_are_file_safe_and_collisions_rejected():
    assert fold_name("casme2/sub01") == "casme2_sub01"
    assert fold_name("a b\\c:d") == "a_b_c_d"
    with pytest.raises(DatasetError, match="same fold name"):
        loso_folds(make_samples({"x/1": 1, "x:1": 1}))


def test_duplicate_keys_and_empty_input_rejected():
    s = make_samples({"a/1": 2})
    with pytest.raises(DatasetError, match="twice"):
        loso_folds(s + s[:1])
    with pytest.raises(DatasetError, match="no samples"):
        loso_folds([])


def test_loso_of_one_subject_is_refused():
    with pytest.raises(DatasetError, match=r"needs at least 2 subjects, the data has 1 \(a/1\)"):
        loso_folds(make_samples({"a/1": 3}))


@pytest.mark.parametrize("k,seed", [(2, 0), (3, 1), (4, 5), (5, 2)])
def test_group_kfold_grouped_balanced_and_complete(k, seed):
    rng = np.random.default_rng(seed)
    counts = {f"d/s{i:02d}": int(rng.integers(1, 9)) for i in range(17)}
    samples = make_samples(counts)
    folds = group_kfold(samples, k, seed)
    assert len(folds) == k
    tested = Counter(key for f in folds for key in f.test_keys)
    assert set(tested) == {s.key for s in samples} and set(tested.values()) == {1}
    sizes = [len(f.test_keys) for f in folds]
    assert max(sizes) - min(sizes) <= max(counts.values())
    for f in folds:
        assert not _subjects(f.test_keys, samples) & _subjects(f.train_keys, samples)
        check_no_leak(f, samples)
    # deterministic for a seed
    assert group_kfold(samples, k, seed) == folds


def test_group_kfold_needs_enough_subjects():
    with pytest.raises(DatasetError, match="at least 4 subjects"):
        group_kfold(make_samples({"a/1": 3, "a/2": 3, "a/3": 1}), 4, 0)


def test_validation_split_by_whole_subjects():
    counts = {f"d/s{i}": 2 + i % 3 for i in range(20)}
    samples = make_samples(counts)
    train, val = validation_split(samples, 0.15, seed=3)
    assert len(train) + len(val) == len(samples)
    assert not _subjects(_keys(train), samples) & _subjects(_keys(val), samples)
    assert len(_subjects(_keys(val), samples)) == 3  # round(0.15 * 20)
    assert validation_split(samples, 0.15, seed=3) == (train, val)
    other = validation_split(samples, 0.15, seed=4)[1]
    assert {s.subject for s in other} != {s.subject for s in val}
    # at least one validation subject and at least one training subject remain
    tr, va = validation_split(make_samples({"a/1": 2, "a/2": 2}), 0.01, seed=0)
    assert len({s.subject for s in tr}) == 1 and len({s.subject for s in va}) == 1
    with pytest.raises(DatasetError, match="at least 2 training subjects"):
        validation_split(make_samples({"a/1": 3}), 0.2, seed=0)


def _keys(samples):
    return tuple(s.key for s in samples)


def test_leak_guard_fires_on_a_leaky_fold():
    samples = make_samples(COUNTS)
    good = loso_folds(samples)[0]
    test_subject = _subjects(good.test_keys, samples).pop()
    # one clip of the test subject moved into training: the subject now straddles both sets
    leaky = Fold(good.name, good.train_keys + good.test_keys[:1], good.test_keys[1:] or good.test_keys)
    with pytest.raises(LeakageError, match="training"):
        check_no_leak(leaky, samples)
    # the same sample in train and test
    with pytest.raises(LeakageError, match=test_subject.replace("/", ".")):
        check_no_leak(Fold("f", good.train_keys + good.test_keys, good.test_keys), samples)
    # a validation set taken from the test subject
    with pytest.raises(LeakageError, match="validation"):
        check_no_leak(Fold("f", good.train_keys, good.test_keys, good.test_keys), samples)
    with pytest.raises(DatasetError, match="not among the samples"):
        check_no_leak(Fold("f", ("nope/x",), good.test_keys), samples)
    with pytest.raises(LeakageError, match="empty test set"):
        check_no_leak(Fold("f", good.train_keys, ()), samples)
