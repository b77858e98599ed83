"""The fold runner: outputs, resume after a kill, shards, failing folds, run-dir guards,
and the default fit_predict's leak-free validation split."""

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from eval_fakes import (
    CLASSES,
    TINY_MODEL,
    centroid_fit_predict,
    make_samples,
    one_thread,
    write_manifest_dataset,
)
from pydantic import ValidationError

from msmmt.config import Config, save_config
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers import filter_class_set, read_dataset
from msmmt.evaluation import fit_predict
from msmmt.evaluation.protocols import Fold, fold_name
from msmmt.evaluation.runner import (
    FoldOutput,
    FoldsFailedError,
    RunDirMismatchError,
    build_folds,
    parse_shard,
    run_folds,
    select_folds,
)


def fold_predictions(run: Path) -> dict[str, str]:
    return {d.name: (d / "predictions.csv").read_text() for d in sorted((run / "folds").iterdir())}


class Counting:
    """Wraps a fit_predict, records the test subjects it was called for, and can raise
    ``exc`` on its ``fail_at``-th call."""

    def __init__(self, fail_at=None, exc=KeyboardInterrupt):
        self.calls: list[str] = []
        self.fail_at, self.exc = fail_at, exc

    def __call__(self, cfg, train, test, fold_dir):
        self.calls.append(fold_dir.name)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise self.exc("boom")
        return centroid_fit_predict(cfg, train, test, fold_dir)


def test_run_writes_outputs_for_every_fold(tmp_path):
    samples = make_samples()
    summary = run_folds(Config(), samples, tmp_path, centroid_fit_predict, progress=False)
    subjects = sorted({s.subject for s in samples})
    assert summary.ran == sorted(fold_name(s) for s in subjects) and not summary.failed
    assert (tmp_path / "config.yaml").is_file()
    listed = pd.read_csv(tmp_path / "samples.csv")
    assert list(listed["key"]) == [s.key for s in samples]
    plan = pd.read_csv(tmp_path / "folds.csv")
    assert sorted(plan["key"]) == sorted(s.key for s in samples)
    by_key = {s.key: s for s in samples}
    for name in summary.ran:
        d = tmp_path / "folds" / name
        pred = pd.read_csv(d / "predictions.csv")
        assert len({by_key[k].subject for k in pred["key"]}) == 1
        assert list(pred["true"]) == [by_key[k].label for k in pred["key"]]
        probs = pred[[f"p_{c}" for c in CLASSES]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert list(pred["predicted"]) == [CLASSES[i] for i in probs.argmax(axis=1)]
        assert list(pred["dataset"]) == [by_key[k].dataset for k in pred["key"]]
        hist = pd.read_csv(d / "history.csv")
        assert list(hist["epoch"]) == [1, 2, 3]
        done = json.loads((d / "done.json").read_text())
        assert done["n_test"] == len(pred) and done["n_train"] == len(samples) - len(pred)
        assert done["best_epoch"] == 3
    # the pooled predictions cover every sample exactly once
    pooled = pd.concat(pd.read_csv(tmp_path / "folds" / n / "predictions.csv") for n in summary.ran)
    assert sorted(pooled["key"]) == sorted(by_key)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_resume_after_a_killed_fold(tmp_path, exc):
    samples = make_samples()
    cfg = Config()
    reference = tmp_path / "ref"
    run_folds(cfg, samples, reference, centroid_fit_predict, progress=False)

    run = tmp_path / "run"
    first = Counting(fail_at=3, exc=exc)
    with pytest.raises(exc):
        run_folds(cfg, samples, run, first, progress=False)
    assert len(first.calls) == 3
    killed = first.calls[2]
    assert not (run / "folds" / killed / "done.json").exists()

    second = Counting()
    summary = run_folds(cfg, samples, run, second, progress=False)
    assert summary.skipped == first.calls[:2]  # folds 1-2 are not redone
    assert second.calls[0] == killed and not set(first.calls[:2]) & set(second.calls)
    assert fold_predictions(run) == fold_predictions(reference)


def test_shards_together_equal_a_single_run(tmp_path):
    samples = make_samples(n_subjects=7)
    cfg = Config()
    run_folds(cfg, samples, tmp_path / "single", centroid_fit_predict, progress=False)
    one = run_folds(cfg, samples, tmp_path / "sharded", centroid_fit_predict, shard="1/2", progress=False)
    two = run_folds(cfg, samples, tmp_path / "sharded", centroid_fit_predict, shard="2/2", progress=False)
    names = [f.name for f in build_folds(cfg, samples)]
    assert one.ran == names[0::2] and two.ran == names[1::2]
    assert fold_predictions(tmp_path / "sharded") == fold_predictions(tmp_path / "single")


def test_shard_and_fold_selection():
    plan = build_folds(Config(), make_samples(n_subjects=5))
    names = [f.name for f in plan]
    assert parse_shard("2/3") == (2, 3)
    assert [f.name for f in select_folds(plan, shard="2/3")] == names[1::3]
    assert [f.name for f in select_folds(plan, names=[names[3], names[0]])] == [names[0], names[3]]
    assert select_folds(plan, names=[names[1]], shard="1/2") == []
    for bad in ["0/2", "3/2", "1", "a/b", "1/0", ""]:
        with pytest.raises(ValueError, match="expected I/N"):
            parse_shard(bad)
    with pytest.raises(ValueError, match="unknown fold"):
        select_folds(plan, names=["nope"])


def test_a_failing_fold_is_recorded_and_the_others_run(tmp_path):
    samples = make_samples()
    bad_fold = fold_name(samples[-1].subject)

    def flaky(cfg, train, test, fold_dir):
        if fold_dir.name == bad_fold:
            raise RuntimeError("out of memory in fold")
        return centroid_fit_predict(cfg, train, test, fold_dir)

    with pytest.raises(FoldsFailedError, match=bad_fold) as info:
        run_folds(Config(), samples, tmp_path, flaky, progress=False)
    summary = info.value.summary
    assert list(summary.failed) == [bad_fold] and "out of memory" in summary.failed[bad_fold]
    assert len(summary.ran) == len({s.subject for s in samples}) - 1
    err = (tmp_path / "folds" / bad_fold / "error.txt").read_text()
    assert "Traceback" in err and "out of memory in fold" in err
    assert not (tmp_path / "folds" / bad_fold / "done.json").exists()

    # a rerun only retries the failed fold and clears its error
    again = Counting()
    summary = run_folds(Config(), samples, tmp_path, again, progress=False)
    assert again.calls == [bad_fold] and summary.ran == [bad_fold]
    assert not (tmp_path / "folds" / bad_fold / "error.txt").exists()


def test_bad_probabilities_fail_the_fold(tmp_path):
    def wrong_shape(cfg, train, test, fold_dir):
        return FoldOutput(np.ones((len(test), 2)) / 2)

    with pytest.raises(FoldsFailedError, match=r"shape \(\d+, 2\), expected \(\d+, 3\)"):
        run_folds(Config(), make_samples(n_subjects=2), tmp_path, wrong_shape, progress=False)

    def bad_part(cfg, train, test, fold_dir):
        p = np.ones((len(test), 3)) / 3
        return FoldOutput(p, parts={"vit": p, "pixel": np.full_like(p, np.nan)})

    with pytest.raises(FoldsFailedError, match="non-finite pixel probabilities"):
        run_folds(Config(), make_samples(n_subjects=2), tmp_path / "part", bad_part, progress=False)


def test_refuses_to_resume_with_a_different_config(tmp_path):
    samples = make_samples(n_subjects=3)
    run_folds(Config(), samples, tmp_path, centroid_fit_predict, progress=False)
    other = Config.model_validate({"loss": {"alpha": 0.3}})
    with pytest.raises(RunDirMismatchError, match=r"loss\.alpha"):
        run_folds(other, samples, tmp_path, centroid_fit_predict, progress=False)
    with pytest.raises(RunDirMismatchError, match="sample list"):
        run_folds(Config(), samples[:-1], tmp_path, centroid_fit_predict, progress=False)
    # execution-only settings may differ between shards / machines
    run_folds(Config(device="cpu"), samples, tmp_path, centroid_fit_predict, progress=False)


def test_saved_config_round_trips(tmp_path):
    cfg = Config.model_validate({"eval": {"protocol": "kfold", "k": 3}, "seed": 4})
    samples = make_samples(n_subjects=6)
    run_folds(cfg, samples, tmp_path, centroid_fit_predict, progress=False)
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["fold01", "fold02", "fold03"]
    save_config(cfg, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == (tmp_path / "config.yaml").read_text()


def test_labels_and_class_count_are_checked(tmp_path):
    samples = make_samples(n_subjects=2)
    raw = [*samples, Sample("casme2", "casme2/s00", "x", "happiness")]
    with pytest.raises(DatasetError, match="filter_class_set"):
        run_folds(Config(), raw, tmp_path, centroid_fit_predict, progress=False)
    # the class count is the config's own check (tests/test_config.py), before any run
    with pytest.raises(ValidationError, match="num_classes"):
        Config.model_validate({"data": {"class_set": "casme2"}})


@pytest.mark.parametrize("early_stopping", [True, False])
def test_train_and_predict_validates_on_other_training_subjects(tmp_path, monkeypatch, early_stopping):
    seen = {}

    def fit(cfg, train, val=None, out_dir=None, progress=True, on_epoch=None):
        seen["train"], seen["val"] = list(train), val
        return types.SimpleNamespace(
            model="m", history=[{"epoch": 1, "train_loss": 0.5}], best_epoch=1, info={}
        )

    def predict_proba(model, samples, cfg):
        return np.full((len(samples), 3), 1 / 3)

    monkeypatch.setattr(fit_predict, "fit", fit)
    monkeypatch.setattr(fit_predict, "predict_proba", predict_proba)

    samples = make_samples(n_subjects=8)
    cfg = Config.model_validate({"eval": {"early_stopping": early_stopping, "val_fraction": 0.3}})
    fold = build_folds(cfg, samples)[0]
    by_key = {s.key: s for s in samples}
    train = [by_key[k] for k in fold.train_keys]
    test = [by_key[k] for k in fold.test_keys]
    out = fit_predict.train_and_predict(cfg, train, test, tmp_path / fold.name)
    assert out.probabilities.shape == (len(test), 3)
    test_subjects = {s.subject for s in test}
    if early_stopping:
        val_subjects = {s.subject for s in seen["val"]}
        train_subjects = {s.subject for s in seen["train"]}
        assert len(val_subjects) == 2  # round(0.3 * 7 training subjects)
        assert not val_subjects & test_subjects and not val_subjects & train_subjects
        assert val_subjects | train_subjects == {s.subject for s in train}
        assert out.info["val_subjects"] == sorted(val_subjects)
    else:
        assert seen["val"] is None and seen["train"] == train


def test_real_trainer_early_stopping_validates_on_other_subjects(tmp_path):
    """The default fit_predict with the real trainer: the validation subjects recorded in
    each fold's done.json are training subjects, never the fold's test subject."""
    data = tmp_path / "data"
    data.mkdir()
    subjects = {"casme2/a": 2, "casme2/b": 2, "smic/c": 2, "samm/d": 2}
    manifest = write_manifest_dataset(data, subjects)
    raw = {**TINY_MODEL, "eval": {"early_stopping": True, "val_fraction": 0.34}}
    cfg = Config.model_validate({**raw, "train": {**TINY_MODEL["train"], "epochs": 3, "patience": 1}})
    samples = filter_class_set(read_dataset("precomputed", manifest), "composite")
    with one_thread():
        summary = run_folds(cfg, samples, tmp_path / "run", fit_predict.train_and_predict, progress=False)
    assert len(summary.ran) == 4
    for subject in subjects:
        d = tmp_path / "run" / "folds" / fold_name(subject)
        done = json.loads((d / "done.json").read_text())
        assert len(done["val_subjects"]) == 1  # round(0.34 * 3 training subjects)
        assert subject not in done["val_subjects"]
        hist = pd.read_csv(d / "history.csv")
        assert "val_uf1" in hist.columns and 1 <= done["best_epoch"] <= len(hist) <= 3


def test_runner_guards_every_fold_against_leaks(tmp_path, monkeypatch):
    samples = make_samples(n_subjects=3)
    good = build_folds(Config(), samples)
    leaky = Fold(good[0].name, good[0].train_keys + good[0].test_keys[:1], good[0].test_keys)
    monkeypatch.setattr("msmmt.evaluation.runner.build_folds", lambda cfg, s: [leaky, *good[1:]])
    calls = Counting()
    with pytest.raises(FoldsFailedError, match="LeakageError") as info:
        run_folds(Config(), samples, tmp_path, calls, progress=False)
    assert list(info.value.summary.failed) == [leaky.name]
    assert leaky.name not in calls.calls and len(calls.calls) == len(good) - 1
