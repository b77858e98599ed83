"""Executors: Ray tasks give the local executor's results; a died task is recorded as a
failed fold, retried, and resumed by a rerun; the resources each task declares.

The Ray tests share one local Ray session of 2 CPUs (start-up takes seconds)."""

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from eval_fakes import (
    TINY_MODEL,
    centroid_fit_predict,
    make_samples,
    one_thread,
    write_manifest_dataset,
)

from msmmt.config import Config, ConfigError
from msmmt.core.cluster import task_resources
from msmmt.evaluation.executors import LocalExecutor, RayExecutor, make_executor
from msmmt.evaluation.runner import FoldsFailedError, run_folds
from msmmt.preprocess.ray_batch import RayClipMap

ray = pytest.importorskip("ray")
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray of 2 CPUs whose workers import the test fakes."""
    path = os.pathsep.join([str(TESTS), str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")])
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def fold_predictions(run: Path) -> dict[str, str]:
    return {d.name: (d / "predictions.csv").read_text() for d in sorted((run / "folds").iterdir())}


class DiesOnce:
    """centroid_fit_predict, except that the process dies (``os._exit``) the first time
    it trains fold ``name`` (a marker file remembers across processes)."""

    def __init__(self, name: str, marker: Path):
        self.name, self.marker = name, marker

    def __call__(self, cfg, train, test, fold_dir):
        if fold_dir.name == self.name and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return centroid_fit_predict(cfg, train, test, fold_dir)


class AlwaysFails:
    def __init__(self, name: str):
        self.name = name

    def __call__(self, cfg, train, test, fold_dir):
        if fold_dir.name == self.name:
            raise ValueError("bad fold")
        return centroid_fit_predict(cfg, train, test, fold_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local executor's run over the fake samples."""
    run = tmp_path_factory.mktemp("local")
    run_folds(Config(), make_samples(), run, centroid_fit_predict, progress=False)
    return run


def test_task_resources_declare_cpus_and_a_gpu_for_cuda():
    assert task_resources("cpu", 3, gpus_in_cluster=4) == {"num_cpus": 3.0, "num_gpus": 0.0}
    assert task_resources("cuda", 2, gpus_in_cluster=1) == {"num_cpus": 2.0, "num_gpus": 1.0}
    assert task_resources("auto", 1, gpus_in_cluster=2)["num_gpus"] == 1.0
    assert task_resources("auto", 1, gpus_in_cluster=0)["num_gpus"] == 0.0
    with pytest.raises(ConfigError, match="no GPU"):
        task_resources("cuda", 1, gpus_in_cluster=0)
    with pytest.raises(ConfigError, match=">= 1"):
        task_resources("cpu", 0, gpus_in_cluster=0)


def test_make_executor_checks_its_options():
    assert make_executor("local", None, 2, 1, 1, "cpu") == LocalExecutor(retries=1)
    ex = make_executor("ray", "auto", 2, 3, 0, "cuda")
    assert (ex.address, ex.threads, ex.device) == ("auto", 3, "cuda")
    for bad in [("local", "auto", 1, 1, 0, "cpu"), ("spark", None, 1, 1, 0, "cpu"),
                ("ray", None, 1, 1, -1, "cpu")]:
        with pytest.raises(ValueError):
            make_executor(*bad)


def test_local_executor_retries_a_failing_fold_and_records_it(tmp_path):
    samples = make_samples()
    name = "casme2_s00"
    with pytest.raises(FoldsFailedError) as info:
        run_folds(Config(), samples, tmp_path, AlwaysFails(name), progress=False,
                  executor=LocalExecutor(retries=2))
    assert list(info.value.summary.failed) == [name]
    assert "ValueError: bad fold" in (tmp_path / "folds" / name / "error.txt").read_text()
    status = pd.read_csv(tmp_path / "status.csv").set_index("fold")
    assert status.loc[name, "state"] == "failed" and status.loc[name, "attempt"] == 3
    assert (status.drop(index=name)["state"] == "done").all()


def test_each_shard_has_its_own_status_files(tmp_path):
    samples = make_samples()
    for shard in ("1/2", "2/2"):
        run_folds(Config(), samples, tmp_path, centroid_fit_predict, shard=shard, progress=False)
    one = pd.read_csv(tmp_path / "status.shard-1-of-2.csv")
    two = pd.read_csv(tmp_path / "status.shard-2-of-2.csv")
    assert len(one) == len(two) == 3 and not set(one["fold"]) & set(two["fold"])
    assert (one["state"] == "done").all() and (two["state"] == "done").all()
    assert not (tmp_path / "status.csv").exists()


def test_an_interrupted_run_leaves_its_running_fold_pending(tmp_path):
    def interrupted_on_smic(cfg, train, test, fold_dir):
        if fold_dir.name.startswith("smic"):
            raise KeyboardInterrupt
        return centroid_fit_predict(cfg, train, test, fold_dir)

    with pytest.raises(KeyboardInterrupt):
        run_folds(Config(), make_samples(), tmp_path, interrupted_on_smic, progress=False)
    status = pd.read_csv(tmp_path / "status.csv").set_index("fold")["state"].to_dict()
    assert status == {
        "casme2_s00": "done", "casme2_s02": "done", "casme2_s04": "done",
        "smic_s01": "pending", "smic_s03": "pending", "smic_s05": "pending",
    }
    progress = pd.read_json(tmp_path / "progress.json", typ="series")
    assert (progress["done"], progress["pending"], progress["running"]) == (3, 3, 0)


def test_ray_gives_the_local_predictions_and_can_take_over_a_run(ray_cluster, tmp_path, reference):
    samples = make_samples()
    run = tmp_path / "mixed"
    first = ["casme2_s00", "smic_s01"]
    run_folds(Config(), samples, run, centroid_fit_predict, folds=first, progress=False)
    summary = run_folds(Config(), samples, run, centroid_fit_predict, progress=False,
                        executor=RayExecutor(workers=2))
    assert summary.skipped == first and len(summary.ran) == 4 and not summary.failed
    assert fold_predictions(run) == fold_predictions(reference)
    status = pd.read_csv(run / "status.csv")
    assert (status["state"] == "done").all()
    ran = status[status["fold"].isin(summary.ran)]
    assert ran["node"].str.contains(":").all()  # host:pid of the Ray worker
    assert not ran["node"].str.endswith(f":{os.getpid()}").any()


def test_a_died_task_is_a_failed_fold_and_a_rerun_completes_it(ray_cluster, tmp_path, reference):
    samples, name = make_samples(), "smic_s03"
    fit = DiesOnce(name, tmp_path / "died")
    run = tmp_path / "run"
    with pytest.raises(FoldsFailedError) as info:
        run_folds(Config(), samples, run, fit, progress=False, executor=RayExecutor(workers=2))
    assert list(info.value.summary.failed) == [name]
    assert "WorkerCrashedError" in info.value.summary.failed[name]
    assert "died" in (run / "folds" / name / "error.txt").read_text()
    assert not (run / "folds" / name / "done.json").exists()
    progress = pd.read_json(run / "progress.json", typ="series")
    assert (progress["done"], progress["failed"]) == (5, 1)

    again = run_folds(Config(), samples, run, fit, progress=False, executor=RayExecutor(workers=2))
    assert again.ran == [name] and len(again.skipped) == 5
    assert not (run / "folds" / name / "error.txt").exists()
    assert fold_predictions(run) == fold_predictions(reference)


def test_retries_rerun_a_died_task_in_the_same_run(ray_cluster, tmp_path, reference):
    samples, name = make_samples(), "casme2_s02"
    run = tmp_path / "run"
    summary = run_folds(Config(), samples, run, DiesOnce(name, tmp_path / "died"),
                        progress=False, executor=RayExecutor(workers=2, retries=1))
    assert not summary.failed and name in summary.ran
    status = pd.read_csv(run / "status.csv").set_index("fold")
    assert status.loc[name, "attempt"] == 2 and status.loc[name, "state"] == "done"
    assert fold_predictions(run) == fold_predictions(reference)


def test_cuda_on_a_cluster_without_gpu_is_an_error_not_a_hang(ray_cluster, tmp_path):
    with pytest.raises(ConfigError, match="no GPU"):
        run_folds(Config(device="cuda"), make_samples(), tmp_path, centroid_fit_predict,
                  progress=False, executor=RayExecutor(device="cuda"))


# ---- the CLI, with the real trainer ----------------------------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from msmmt.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_cli_loso_on_ray_trains_like_the_local_run(ray_cluster, tmp_path):
    """The real trainer on a tiny model: the Ray run's predictions equal the local run's;
    --tensorboard logs the training curves of every fold."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tmp_path / "data").mkdir()
    manifest = write_manifest_dataset(tmp_path / "data", {"casme2/sub01": 3, "samm/006": 2, "smic/s3": 3})
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY_MODEL))
    with one_thread():
        local = _cli("loso", cfg, "--data", manifest, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    distributed = _cli("loso", cfg, "--data", manifest, "--out", tmp_path / "ray",
                       "--executor", "ray", "--retries", "1", "--tensorboard")
    assert distributed.exit_code == 0, distributed.output
    assert "3 fold(s) run" in distributed.output and "report:" in distributed.output
    assert fold_predictions(tmp_path / "ray") == fold_predictions(tmp_path / "local")
    events = EventAccumulator(str(tmp_path / "ray" / "tensorboard" / "smic_s3"))
    events.Reload()
    assert {"lr", "loss/train", "acc/train"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
    assert (tmp_path / "ray" / "metrics.csv").read_text() == (tmp_path / "local" / "metrics.csv").read_text()
    bad = _cli("loso", cfg, "--data", manifest, "--out", tmp_path / "x", "--address", "auto")
    assert bad.exit_code == 2 and "--address needs --executor ray" in bad.output


# ---- preprocessing -----------------------------------------------------------------------


class DiesOnItem:
    """Doubles its item, except that the process dies on item ``bad`` (once, or always)."""

    def __init__(self, bad: int, marker: Path | None):
        self.bad, self.marker = bad, marker

    def __call__(self, item):
        if item == self.bad and (self.marker is None or not self.marker.exists()):
            if self.marker is not None:
                self.marker.touch()
            os._exit(1)
        return 2 * item


@pytest.mark.slow
def test_ray_clip_map_retries_a_died_batch_then_reports_its_clips(ray_cluster, tmp_path):
    items = list(range(7))
    ok = dict(RayClipMap(batch_size=3, retries=1)(DiesOnItem(4, tmp_path / "died"), items))
    assert ok == {i: 2 * i for i in items}
    lost = dict(RayClipMap(batch_size=3, retries=0)(DiesOnItem(4, None), items))
    assert [i for i in items if isinstance(lost[i], str)] == [3, 4, 5]  # the batch of item 4
    assert "WorkerCrashedError" in lost[4]
    assert {i: lost[i] for i in (0, 1, 2, 6)} == {i: 2 * i for i in (0, 1, 2, 6)}


@pytest.mark.slow
def test_cli_preprocess_on_ray_writes_the_local_cache(ray_cluster, tmp_path):
    from msmmt.data.synthetic import generate

    root = tmp_path / "synth"
    generate(root, subjects=2, clips_per_subject=2, seed=0, size=160)
    clip = sorted(p for p in root.glob("sub01/*") if p.is_dir())[0]
    for frame in clip.glob("*.jpg"):  # a clip without a face: a recorded failure
        cv2.imwrite(str(frame), np.full((160, 160, 3), 128, np.uint8))
    settings = ["--set", "preprocess.face_size=64", "--set", "preprocess.image_size=32",
                "--set", "model.img_size=32"]
    caches = {}
    for executor in ("local", "ray"):
        caches[executor] = tmp_path / executor
        result = _cli(*settings, "preprocess", "synthetic", root, "--out", caches[executor],
                      "--executor", executor, "--batch-size", "2")
        assert result.exit_code == 1, result.output  # the faceless clip
        assert "3 done" in result.output and "1 failed" in result.output
    for name in ("manifest.csv", "failures.csv"):
        assert (caches["ray"] / name).read_text() == (caches["local"] / name).read_text()
    files = {ex: {p.relative_to(c): p.read_bytes() for p in c.rglob("*.png")} for ex, c in caches.items()}
    assert len(files["local"]) >= 6 and files["ray"] == files["local"]


# ---- TensorBoard -------------------------------------------------------------------------


def test_tensorboard_logs_every_fold_history_and_nothing_else_changes(tmp_path, reference):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from msmmt.evaluation.tensorboard import TensorBoardFitPredict, scalar_tag

    assert (scalar_tag("train_loss"), scalar_tag("val_uf1"), scalar_tag("lr")) == (
        "loss/train", "uf1/val", "lr")
    run = tmp_path / "run"
    fit = TensorBoardFitPredict(centroid_fit_predict, run / "tensorboard")
    summary = run_folds(Config(), make_samples(), run, fit, progress=False)
    assert fold_predictions(run) == fold_predictions(reference)
    for name in summary.ran:
        history = pd.read_csv(run / "folds" / name / "history.csv")
        events = EventAccumulator(str(run / "tensorboard" / name))
        events.Reload()
        assert sorted(events.Tags()["scalars"]) == ["loss/train", "loss/val"]
        for column, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val")):
            logged = events.Scalars(tag)
            assert [e.step for e in logged] == list(history["epoch"])
            np.testing.assert_allclose([e.value for e in logged], history[column], rtol=1e-6)


def test_tensorboard_shows_each_epoch_while_the_fold_still_trains(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from msmmt.evaluation.tensorboard import TensorBoardFitPredict

    seen = {}

    def training(cfg, train, test, fold_dir, on_epoch):
        for epoch in (1, 2):  # after each epoch, read the fold's events from disk
            on_epoch({"epoch": epoch, "train_loss": 1.0 / epoch})
            events = EventAccumulator(str(tmp_path / "tb" / fold_dir.name))
            events.Reload()
            seen.setdefault(fold_dir.name, []).append([e.step for e in events.Scalars("loss/train")])
        return centroid_fit_predict(cfg, train, test, fold_dir)

    run_folds(Config(), make_samples(), tmp_path / "run",
              TensorBoardFitPredict(training, tmp_path / "tb"), progress=False)
    assert seen and all(steps == [[1], [1, 2]] for steps in seen.values())


def test_ray_executor_without_ray_installed_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'msmmt\[ray\]'"):
        run_folds(Config(), make_samples(), tmp_path, centroid_fit_predict, progress=False,
                  executor=RayExecutor())
