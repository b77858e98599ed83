"""Baselines in the fold runner: the same folds and leakage guard as the model, the SVM and
logistic regression equal an independent scikit-learn LeaveOneGroupOut loop, STSTNet's
architecture and that it learns, and the CLI's report for a baseline run."""

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from eval_fakes import CLASSES, hashed_fit_predict, one_thread, write_manifest_dataset
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import BaselineConfig, Config
from msmmt.core.records import DatasetError
from msmmt.data.readers import filter_class_set, read_dataset
from msmmt.engine.baselines import fit_baseline, fit_ststnet
from msmmt.evaluation import runner as runner_module
from msmmt.evaluation.fit_predict import baseline_fit_predict
from msmmt.evaluation.runner import run_folds
from msmmt.model.ststnet import STSTNet

SUBJECTS = {"casme2/a": 5, "casme2/b": 4, "smic/c": 6, "samm/d": 3, "samm/e": 5}


def _write_weak_dataset(root, subjects, size=28):
    """28 x 28 noise images in which channel c of a class-c clip is slightly brighter in
    one region: learnable, but not perfectly."""
    rng = np.random.default_rng(1)
    rows = ["dataset,subject,sample,label,texture_image,flow_image"]
    n = 0
    for subject, clips in subjects.items():
        for j in range(clips):
            c = n % 3
            img = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
            img[6:16, 6:16, c] += 30
            cv2.imwrite(str(root / f"f{n}.png"), img)
            rows.append(f"{subject.split('/')[0]},{subject},clip{j},{CLASSES[c]},f{n}.png,f{n}.png")
            n += 1
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    manifest = _write_weak_dataset(tmp_path_factory.mktemp("data"), SUBJECTS)
    return filter_class_set(read_dataset("precomputed", manifest), "composite")


def _cfg(**baseline) -> Config:
    return Config.model_validate({"device": "cpu", "baseline": baseline})


def _independent_loso(samples, make_classifier):
    """scikit-learn's own LOSO loop on the motion images' pixels read with OpenCV."""
    x = np.stack([
        cv2.cvtColor(cv2.imread(str(s.motion_image)), cv2.COLOR_BGR2RGB).reshape(-1) / 255.0
        for s in samples
    ])
    y = np.array([s.label for s in samples])
    groups = [s.subject for s in samples]
    pred = np.empty(len(samples), dtype=object)
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        clf = make_pipeline(StandardScaler(), make_classifier()).fit(x[train], y[train])
        pred[test] = clf.predict(x[test])
    return dict(zip((s.key for s in samples), pred, strict=True))


@pytest.mark.parametrize(
    ("kind", "make_classifier"),
    [
        ("svm", lambda: SVC(C=1.0, gamma="scale", class_weight="balanced", break_ties=True)),
        ("logreg", lambda: LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)),
    ],
)
def test_pixel_baselines_equal_an_independent_sklearn_loop(dataset, tmp_path, kind, make_classifier):
    run_folds(_cfg(kind=kind), dataset, tmp_path, baseline_fit_predict, progress=False)
    ours = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "folds").glob("*/predictions.csv")))
    expected = _independent_loso(dataset, make_classifier)
    assert len(ours) == len(dataset)
    assert dict(zip(ours["key"], ours["predicted"], strict=True)) == expected
    # not a trivial agreement: the classifier is right on some clips and wrong on others
    correct = (ours["true"] == ours["predicted"]).mean()
    assert 0.0 < correct < 1.0


def test_baseline_runs_on_the_models_folds_through_the_leakage_guard(dataset, tmp_path, monkeypatch):
    run_folds(_cfg(), dataset, tmp_path / "model", hashed_fit_predict, progress=False)
    guarded = []

    def spy(fold, samples):
        guarded.append(fold.name)
        return check(fold, samples)

    check = runner_module.check_no_leak
    monkeypatch.setattr(runner_module, "check_no_leak", spy)
    summary = run_folds(_cfg(kind="svm"), dataset, tmp_path / "svm", baseline_fit_predict,
                        progress=False)
    assert guarded == summary.ran and len(guarded) == len(SUBJECTS)
    for f in ("folds.csv", "samples.csv"):
        assert (tmp_path / "svm" / f).read_text() == (tmp_path / "model" / f).read_text()


def test_scores_of_a_test_clip_do_not_depend_on_the_other_test_clips(dataset):
    # Everything is fitted on the training fold: the test clips are only transformed.
    train = [s for s in dataset if s.subject != "smic/c"]
    test = [s for s in dataset if s.subject == "smic/c"]
    for kind in ("svm", "logreg"):
        cfg = _cfg(kind=kind)
        alone = fit_baseline(cfg, train, test[:1]).probabilities
        together = fit_baseline(cfg, train, test).probabilities
        np.testing.assert_allclose(alone[0], together[0], rtol=1e-5)  # float32 features
        np.testing.assert_allclose(together.sum(axis=1), 1.0)


def test_missing_motion_image_is_a_clear_error(dataset):
    from dataclasses import replace

    broken = [replace(dataset[0], motion_image=None), *dataset[1:]]
    with pytest.raises(DatasetError, match=f"{dataset[0].key}: no motion image"):
        fit_baseline(_cfg(kind="svm"), broken, dataset[:2])


def test_ststnet_shapes_and_parameter_count():
    net = STSTNet(num_classes=3, image_size=28)
    assert net(torch.zeros(5, 3, 28, 28)).shape == (5, 3)
    # streams: 3x3x3 kernels + bias with 3, 5 and 8 channels; FC: 16 x 5 x 5 -> 3
    convs = (27 + 1) * (3 + 5 + 8)
    assert sum(p.numel() for p in net.parameters()) == convs + (400 + 1) * 3 == 1651
    maps = [stream(torch.zeros(1, 3, 28, 28)).shape for stream in net.streams]
    assert maps == [(1, 3, 10, 10), (1, 5, 10, 10), (1, 8, 10, 10)]
    assert STSTNet(num_classes=5, image_size=16).fc.in_features == 16 * 3 * 3


def test_ststnet_learns_a_separable_set():
    # Class c: channel c carries a bright blob; the rest is noise.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.uniform(0, 0.3, (60, 28, 28, 3)).astype(np.float32)
    x[np.arange(60), 8:20, 8:20, y] += 0.7
    cfg = BaselineConfig(kind="ststnet", epochs=60, lr=1e-2, batch_size=16)
    with one_thread():
        model, history = fit_ststnet(cfg, x, y, 3, seed=0)
        test = rng.uniform(0, 0.3, (30, 28, 28, 3)).astype(np.float32)
        ty = np.repeat(np.arange(3), 10)
        test[np.arange(30), 8:20, 8:20, ty] += 0.7
        pred = model(torch.from_numpy(test.transpose(0, 3, 1, 2))).argmax(1).numpy()
    assert len(history) == 60 and history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]
    assert history[-1]["train_acc"] == 1.0
    assert (pred == ty).mean() == 1.0


def test_cli_loso_with_a_baseline_writes_the_report(tmp_path):
    manifest = write_manifest_dataset(tmp_path, {"casme2/a": 3, "smic/b": 3, "samm/c": 3}, size=28)
    run = tmp_path / "run"
    args = ["--set", "baseline.kind=ststnet", "--set", "baseline.epochs=3", "loso",
            "--data", str(manifest), "--out", str(run)]
    with one_thread():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (run / "report.md").read_text()
    assert "STSTNet (Liong et al. 2019)" in text and "3 epochs, last epoch tested" in text
    assert "UF1 [95% CI]" in text and "within noise" in text
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"uf1_lo", "uf1_hi"} <= set(metrics.columns)
    assert (metrics["uf1_lo"] <= metrics["uf1"]).all() and (metrics["uf1"] <= metrics["uf1_hi"]).all()
    assert len(pd.read_csv(run / "folds" / "samm_c" / "history.csv")) == 3
