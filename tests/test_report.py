"""Reports merged from fold outputs: metrics vs scikit-learn on the pooled predictions,
sharded == single run, partial and failed runs, figures, the paper's figures labelled."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from eval_fakes import (
    CLASSES,
    TINY_MODEL,
    centroid_fit_predict,
    hashed_fit_predict,
    make_samples,
    one_thread,
    write_manifest_dataset,
)
from matplotlib.image import imread
from sklearn.metrics import accuracy_score, f1_score, recall_score

from msmmt.cli.scores import print_scores
from msmmt.config import Config, load_config
from msmmt.evaluation.protocols import fold_name
from msmmt.evaluation.report import write_report
from msmmt.evaluation.results import PAPER_TABLE2, load_run, training_curves
from msmmt.evaluation.runner import FoldsFailedError, run_folds

COMPOSITE = ("casme2", "samm", "smic")


def _sk(frame):
    t = [CLASSES.index(v) for v in frame["true"]]
    p = [CLASSES.index(v) for v in frame["predicted"]]
    kw = {"average": "macro", "labels": [0, 1, 2], "zero_division": 0}
    return accuracy_score(t, p), recall_score(t, p, **kw), f1_score(t, p, **kw)


@pytest.fixture
def full_run(tmp_path):
    samples = make_samples(n_subjects=9, datasets=COMPOSITE, noise=0.9)
    run_folds(Config(), samples, tmp_path / "run", centroid_fit_predict, progress=False)
    return tmp_path / "run", samples


def test_report_metrics_match_sklearn_on_pooled_fold_predictions(full_run):
    run, samples = full_run
    path = write_report(run)
    assert path == run / "report.md"
    # an independent pooling: read every fold's predictions.csv
    folds = pd.concat(pd.read_csv(p) for p in sorted((run / "folds").glob("*/predictions.csv")))
    assert len(folds) == len(samples)
    metrics = pd.read_csv(run / "metrics.csv").set_index("part")
    assert list(metrics.index) == ["all", *COMPOSITE]
    for part, frame in [("all", folds), *[(d, folds[folds.dataset == d]) for d in COMPOSITE]]:
        acc, uar, uf1 = _sk(frame)
        assert metrics.loc[part, "acc"] == pytest.approx(acc)
        assert metrics.loc[part, "uar"] == pytest.approx(uar)
        assert metrics.loc[part, "uf1"] == pytest.approx(uf1)
        assert metrics.loc[part, "n"] == len(frame)
    pooled = pd.read_csv(run / "predictions.csv")
    assert sorted(pooled["key"]) == sorted(s.key for s in samples)
    assert set(pooled["fold"]) == {fold_name(s.subject) for s in samples}
    # the classifier is far better than chance on this data, so the scores are informative
    assert metrics.loc["all", "uf1"] > 0.5


def test_report_text_labels_the_papers_figures_and_states_the_protocol(full_run):
    run, _ = full_run
    text = write_report(run).read_text()
    ours = pd.read_csv(run / "metrics.csv").set_index("part")
    assert "published figures (not ours)" in text
    for part, v in PAPER_TABLE2.items():
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {part} | {v['uf1']:.4f}"))
        assert f"{v['uar']:.4f}" in row and f"{ours.loc[part, 'uf1']:.4f}" in row
    assert "fixed 30 epochs" not in text and "fixed 50 epochs" in text  # Config() default
    assert "never averaged over folds" in text
    assert re.search(r"- done: 9\n- failed: 0\n- missing: 0", text)
    assert "Partial run" not in text


def test_figures_are_written(full_run):
    run, _ = full_run
    write_report(run)
    for name in ("confusion.png", "subject_accuracy.png", "training_curves.png"):
        img = imread(run / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # not a blank canvas


def test_training_curves_are_the_mean_over_folds():
    history = pd.DataFrame(
        {
            "fold": ["a", "a", "b", "b"],
            "epoch": [1, 2, 1, 2],
            "train_loss": [1.0, 0.5, 3.0, 1.5],
            "val_uf1": [0.2, 0.4, 0.6, 0.8],
        }
    )
    curves = training_curves(history)
    np.testing.assert_allclose(curves["train_loss"], [2.0, 1.0])
    np.testing.assert_allclose(curves["val_uf1"], [0.4, 0.6])


def test_shards_merge_into_the_same_report_as_a_single_run(tmp_path):
    samples = make_samples(n_subjects=7, datasets=COMPOSITE)
    cfg = Config()
    run_folds(cfg, samples, tmp_path / "single", centroid_fit_predict, progress=False)
    for shard in ("1/2", "2/2"):
        run_folds(cfg, samples, tmp_path / "sharded", centroid_fit_predict, shard=shard, progress=False)
    for name in ("single", "sharded"):
        write_report(tmp_path / name)
    for f in ("metrics.csv", "predictions.csv"):
        assert (tmp_path / "sharded" / f).read_text() == (tmp_path / "single" / f).read_text()


def test_partial_and_failed_runs_are_reported(tmp_path):
    samples = make_samples(n_subjects=5)
    cfg = Config()
    names = sorted({fold_name(s.subject) for s in samples})
    run_folds(cfg, samples, tmp_path, centroid_fit_predict, folds=names[:2], progress=False)

    def broken(cfg, train, test, fold_dir):
        raise ValueError("corrupt image in fold")

    with pytest.raises(FoldsFailedError):
        run_folds(cfg, samples, tmp_path, broken, folds=[names[2]], progress=False)
    results = load_run(tmp_path)
    assert results.folds("done") == names[:2]
    assert results.folds("failed") == [names[2]] and results.folds("missing") == names[3:]
    text = write_report(tmp_path).read_text()
    assert "Partial run" in text and "2 of 5 folds finished" in text
    assert f"- failed: 1 ({names[2]})" in text and "corrupt image in fold" in text
    assert f"- missing: 2 ({names[3]}, {names[4]})" in text
    metrics = pd.read_csv(tmp_path / "metrics.csv").set_index("part")
    assert metrics.loc["all", "n"] == sum(1 for s in samples if fold_name(s.subject) in names[:2])


def test_empty_and_non_run_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        write_report(tmp_path)
    samples = make_samples(n_subjects=3)

    def broken(cfg, train, test, fold_dir):
        raise RuntimeError("nope")

    with pytest.raises(FoldsFailedError):
        run_folds(Config(), samples, tmp_path, broken, progress=False)
    text = write_report(tmp_path).read_text()
    assert "- done: 0" in text and "- failed: 3" in text
    assert not (tmp_path / "confusion.png").exists()


def test_non_composite_class_set_shows_no_paper_comparison(tmp_path):
    samples = make_samples(n_subjects=4, datasets=("smic",))
    cfg = Config.model_validate({"data": {"class_set": "smic"}, "eval": {"early_stopping": True}})
    run_folds(cfg, samples, tmp_path, centroid_fit_predict, progress=False)
    text = write_report(tmp_path).read_text()
    assert "covers the composite class set only" in text
    assert "0.8160" not in text
    assert "early stopping (patience 5)" in text and "15% of the *training* subjects" in text
    assert list(pd.read_csv(tmp_path / "metrics.csv")["part"]) == ["all"]


def test_echo_prints_the_table(full_run, capsys):
    run, _ = full_run
    write_report(run)
    print_scores(load_run(run))
    out = capsys.readouterr().out
    uf1 = pd.read_csv(run / "metrics.csv").set_index("part").loc["all", "uf1"]
    assert "9/9 folds done" in out and f"{uf1:.4f}" in out and "0.8160" in out


# ---- the `msmmt loso` / `msmmt report` commands -------------------------------------------

SUBJECTS = {"casme2/sub01": 3, "samm/006": 2, "smic/s3": 3}


def _cli(*args):
    from typer.testing import CliRunner

    from msmmt.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_loso_trains_every_fold_and_writes_the_report(tmp_path):
    """End to end with the real trainer on a tiny model: manifest -> folds -> report."""
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", SUBJECTS)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_MODEL))
    run = tmp_path / "run"
    with one_thread():
        result = _cli("loso", cfg, "--data", manifest, "--out", run)
    assert result.exit_code == 0, result.output
    assert "3 fold(s) run" in result.output and "report:" in result.output
    names = sorted(fold_name(s) for s in SUBJECTS)
    for name in names:
        hist = pd.read_csv(run / "folds" / name / "history.csv")
        assert list(hist["epoch"]) == [1, 2]  # fixed epochs, no selection
    pooled = pd.read_csv(run / "predictions.csv")
    assert len(pooled) == sum(SUBJECTS.values())
    assert "Scores (ours)" in (run / "report.md").read_text()
    # a rerun resumes (nothing left to do) and `report` reproduces the same metrics
    metrics = (run / "metrics.csv").read_text()
    with one_thread():
        again = _cli("loso", cfg, "--data", manifest, "--out", run)
    assert again.exit_code == 0 and "0 fold(s) run, 3 already done" in again.output
    rep = _cli("report", run)
    assert rep.exit_code == 0, rep.output
    assert (run / "metrics.csv").read_text() == metrics


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr("msmmt.evaluation.fit_predict.train_and_predict", hashed_fit_predict)


def test_cli_shards_then_report_equal_one_run(tmp_path, fake_model):
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", {**SUBJECTS, "smic/s4": 2})
    single = _cli("loso", "--data", manifest, "--out", tmp_path / "single")
    assert single.exit_code == 0, single.output
    first = _cli("loso", "--data", manifest, "--out", tmp_path / "sharded", "--shard", "1/2")
    assert first.exit_code == 0 and "2 of 4 folds not done yet" in first.output
    assert not (tmp_path / "sharded" / "report.md").exists()
    second = _cli("loso", "--data", manifest, "--out", tmp_path / "sharded", "--shard", "2/2")
    assert second.exit_code == 0 and "report:" in second.output
    for f in ("metrics.csv", "predictions.csv"):
        assert (tmp_path / "sharded" / f).read_text() == (tmp_path / "single" / f).read_text()
    only = _cli("loso", "--data", manifest, "--out", tmp_path / "one", "--folds", "smic_s3,samm_006")
    assert only.exit_code == 0 and "2 fold(s) run" in only.output
    assert sorted(p.name for p in (tmp_path / "one" / "folds").iterdir()) == ["samm_006", "smic_s3"]


def test_cli_reports_a_failing_fold_with_exit_status_1(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", SUBJECTS)

    def failing_on_samm(cfg, train, test, fold_dir):
        if fold_dir.name == "samm_006":
            raise RuntimeError("disk full")
        return hashed_fit_predict(cfg, train, test, fold_dir)

    monkeypatch.setattr("msmmt.evaluation.fit_predict.train_and_predict", failing_on_samm)
    result = _cli("loso", "--data", manifest, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "1 fold(s) failed" in result.output and "samm_006: RuntimeError: disk full" in result.output
    rep = _cli("report", tmp_path / "run")
    assert rep.exit_code == 0 and "2/3 folds done" in rep.output


def test_cli_clear_errors(tmp_path, fake_model):
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", SUBJECTS)
    r = _cli("loso", "--data", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "nowhere: no such file or folder" in r.output
    for bad in ("3/2", "0/1", "x"):
        r = _cli("loso", "--data", manifest, "--out", tmp_path / "run", "--shard", bad)
        assert r.exit_code == 2 and "expected I/N" in r.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.csv").write_text("dataset,subject,sample,label,texture_image,flow_image\n")
    r = _cli("loso", "--data", tmp_path / "empty", "--out", tmp_path / "run")
    assert r.exit_code == 2 and r.output.startswith("error:") and str(tmp_path / "empty") in r.output
    assert "Traceback" not in r.output
    r = _cli("--set", "data.datasets=[casme3]", "loso", "--data", manifest, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "no clips of datasets ['casme3']" in r.output
    r = _cli("loso", "--data", manifest, "--out", tmp_path / "run", "--folds", "nope")
    assert r.exit_code == 2 and "unknown fold" in r.output
    assert _cli("loso", "--data", manifest, "--out", tmp_path / "run").exit_code == 0
    r = _cli("--set", "loss.alpha=0.9", "loso", "--data", manifest, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "different config" in r.output and "loss.alpha" in r.output
    r = _cli("report", tmp_path / "missing")
    assert r.exit_code == 2 and "no such run folder" in r.output
    r = _cli("report", tmp_path / "data")
    assert r.exit_code == 2 and "not a run directory" in r.output


def test_cli_refuses_unusable_data_before_any_fold(tmp_path, fake_model):
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", SUBJECTS)
    run = tmp_path / "run"
    for command in ("loso", "train"):  # one check for both: raw clips are not training data
        r = _cli(command, "--data", tmp_path / "data", "--dataset", "synthetic", "--out", run)
        assert r.exit_code == 2 and r.output.startswith("error: synthetic dataset")
        assert "preprocess them first (msmmt preprocess synthetic" in r.output
    r = _cli("loso", "--data", manifest, "--dataset", "nosuch", "--out", run)
    assert r.exit_code == 2
    assert r.output.strip() == "error: unknown dataset 'nosuch'; one of precomputed, composite-release"
    (tmp_path / "one").mkdir()
    one = write_manifest_dataset(tmp_path / "one", {"casme2/sub01": 3})
    r = _cli("loso", "--data", one, "--out", run)
    assert r.exit_code == 2
    assert "error: leave-one-subject-out needs at least 2 subjects, the data has 1" in r.output
    r = _cli("--set", "eval.protocol=kfold", "--set", "eval.k=4", "loso", "--data", manifest,
             "--out", run)
    assert r.exit_code == 2 and "k=4 folds need at least 4 subjects, the data has 3" in r.output
    (tmp_path / "data" / "flow_4.png").write_bytes(b"notapng")
    r = _cli("loso", "--data", manifest, "--out", run)
    assert r.exit_code == 2
    assert f"{manifest} row 6: flow_image {tmp_path / 'data' / 'flow_4.png'}: not a readable" in r.output
    assert "Traceback" not in r.output and not run.exists()


def test_cli_loso_loads_pretrained_weights_before_any_fold(tmp_path, fake_model, monkeypatch):
    import torch
    from huggingface_hub.errors import LocalEntryNotFoundError
    from safetensors.torch import save_file

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("outgoing traffic has been disabled")

    monkeypatch.setattr("timm.models._hub.hf_hub_download", offline)
    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", SUBJECTS)
    r = _cli("--set", "model.pretrained=timm", "--set", "model.backbone=vit_tiny_patch16_224",
             "loso", "--data", manifest, "--out", tmp_path / "run")
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith(
        "error: model.pretrained timm: could not fetch the ImageNet weights of 'vit_tiny_patch16_224'"
    )
    wrong = tmp_path / "wrong.safetensors"
    save_file({"something.else": torch.zeros(3)}, str(wrong))
    r = _cli("--set", f"model.pretrained={wrong}", "--set", "model.backbone=vit_tiny_patch16_224",
             "loso", "--data", manifest, "--out", tmp_path / "run")
    assert r.exit_code == 2 and f"error: {wrong}: weights do not fit the backbone" in r.output
    assert not (tmp_path / "run").exists()


def test_cli_report_of_a_run_without_finished_folds_writes_nothing(tmp_path):
    def broken(cfg, train, test, fold_dir):
        raise RuntimeError("nope")

    with pytest.raises(FoldsFailedError):
        run_folds(Config(), make_samples(n_subjects=3), tmp_path, broken, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _cli("report", tmp_path)
    assert r.exit_code == 1 and r.output == f"error: {tmp_path}: no fold is finished yet\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_report_and_compare_refuse_a_run_with_a_broken_config_in_one_line(tmp_path):
    samples = make_samples(n_subjects=3)
    for name in ("good", "bad"):
        run_folds(Config(), samples, tmp_path / name, centroid_fit_predict, progress=False)
    saved = tmp_path / "bad" / "config.yaml"
    saved.write_text("x\n")
    for args in (["report", tmp_path / "bad"], ["compare", tmp_path / "good", tmp_path / "bad"]):
        r = _cli(*args)
        assert r.exit_code == 2, r.output
        assert r.output == (
            f"error: {saved}: top level must be a mapping of sections (the saved config of run "
            f"{saved.parent})\n"
        )
    assert not (tmp_path / "bad" / "report.md").exists()


def test_report_and_table_state_how_the_config_departs_from_the_paper(tmp_path, capsys):
    samples = make_samples(n_subjects=3, datasets=COMPOSITE)
    for name in ("cpu-small", "paper"):
        run_folds(load_config(name), samples, tmp_path / name, centroid_fit_predict, progress=False)
        write_report(tmp_path / name)
    small = (tmp_path / "cpu-small" / "report.md").read_text()
    assert "**not the paper's method as published**" in small
    assert "- `loss.alpha 0.5 (paper 0.1)`" in small and "- `train.lr 0.001 (paper 5e-05)`" in small
    paper = (tmp_path / "paper" / "report.md").read_text()
    assert "follows the `paper` preset in every setting of the method" in paper
    assert "not the paper's method" not in paper
    print_scores(load_run(tmp_path / "cpu-small"))
    out = capsys.readouterr().out
    assert "Not the paper's method" in out and "loss.same_class_negatives false (paper true)" in out
