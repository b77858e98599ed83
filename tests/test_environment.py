"""The environment a result was computed in: what is recorded (library versions equal to the
imported modules'), where (folds, reports, comparisons, caches, synthetic sets, checkpoints,
benchmark rows), and how differences are named."""

import json
import platform
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import scipy
import skimage
import sklearn
import timm
import torch
from eval_fakes import centroid_fit_predict, hashed_fit_predict, make_samples

from msmmt.config import Config
from msmmt.core.environment import consensus, describe_varying, differences, environment, varying
from msmmt.engine.export import checkpoint_extra
from msmmt.evaluation.comparison import compare_runs, comparison_markdown
from msmmt.evaluation.report import environment_warning, write_report
from msmmt.evaluation.results import load_run
from msmmt.evaluation.runner import run_folds
from msmmt.preprocess.cache import cache_environments

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_environment_holds_the_versions_of_the_imported_libraries():
    env = environment()
    assert env["python"] == platform.python_version()
    assert torch.__version__.startswith(env["torch"])
    for key, module in [("numpy", np), ("scipy", scipy), ("scikit-learn", sklearn),
                        ("scikit-image", skimage), ("timm", timm)]:
        assert env[key] == module.__version__, key
    assert env["opencv"].startswith(cv2.__version__)  # the wheel adds a build number
    assert env["dlib"] != "not installed" and env["cpu"]
    assert environment() == env and environment() is not environment()  # a fresh copy each call


def test_differences_varying_and_their_description():
    a = {"numpy": "2.4.5", "cpu": "x"}
    b = {"numpy": "2.4.6", "cpu": "x", "dlib": "20"}
    assert differences(a, a) == []
    assert differences(a, b) == ["dlib ? -> 20", "numpy 2.4.5 -> 2.4.6"]
    envs = {"f1": a, "f2": a, "f3": {**a, "numpy": "2.4.6"}, "f4": None}
    spread = varying(envs)
    assert spread == {
        "environment": {"recorded": ["f1", "f2", "f3"], "not recorded": ["f4"]},
        "numpy": {"2.4.5": ["f1", "f2"], "2.4.6": ["f3"]},
    }
    assert varying({"f1": a, "f2": dict(a)}) == {} and varying({"f1": None, "f2": None}) == {}
    assert consensus(envs) == {"cpu": "x"}
    assert consensus(envs, mixed="mixed") == {"numpy": "mixed", "cpu": "x"}
    assert consensus({"f1": None}) is None
    lines = describe_varying(spread, "fold", limit=1)
    assert lines[1] == "numpy: 2.4.5 (2 folds: f1, ...); 2.4.6 (1 fold: f3)"


def _edit_done(fold_dir: Path, change) -> None:
    path = fold_dir / "done.json"
    done = json.loads(path.read_text())
    change(done)
    path.write_text(json.dumps(done))


def test_folds_record_their_environment_and_the_report_names_differences(tmp_path, capsys):
    samples = make_samples(n_subjects=4)
    run = tmp_path / "run"
    run_folds(Config(), samples, run, centroid_fit_predict, progress=False)
    folds = sorted((run / "folds").iterdir())
    done = json.loads((folds[0] / "done.json").read_text())
    assert done["environment"] == {**environment(), "torch_threads": str(torch.get_num_threads())}
    text = write_report(run).read_text()
    assert "## Environment" in text and f"| numpy | {np.__version__} |" in text
    assert "not all computed in the same environment" not in text
    assert environment_warning(load_run(run)) == []

    _edit_done(folds[0], lambda d: d["environment"].update(numpy="1.0"))
    _edit_done(folds[1], lambda d: d.pop("environment"))
    text = write_report(run).read_text()
    assert "**The folds were not all computed in the same environment" in text
    assert f"- numpy: 1.0 (1 fold: {folds[0].name}); {np.__version__} (2 folds: " in text
    assert f"not recorded (1 fold: {folds[1].name})" in text
    assert f"| numpy | {np.__version__} |" not in text  # no longer common to all folds

    from msmmt.cli.scores import print_scores

    print_scores(load_run(run))
    out = capsys.readouterr().out
    assert "not all computed in the same environment" in out and "numpy: 1.0 (1 fold" in out


def test_comparison_names_how_the_runs_environments_differ(tmp_path):
    samples = make_samples(n_subjects=4)
    for name, fit in (("a", centroid_fit_predict), ("b", hashed_fit_predict)):
        run_folds(Config(), samples, tmp_path / name, fit, progress=False)
    same = compare_runs([tmp_path / "a", tmp_path / "b"], n_boot=50)
    assert same.environments == [] and "## Environments" not in comparison_markdown(same)
    for fold in (tmp_path / "b" / "folds").iterdir():
        _edit_done(fold, lambda d: d["environment"].update(opencv="4.0"))
    other = compare_runs([tmp_path / "a", tmp_path / "b"], n_boot=50)
    assert other.environments == [f"opencv: {environment()['opencv']} (1 run: a); 4.0 (1 run: b)"]
    assert "## Environments" in comparison_markdown(other)
    # the scores themselves are untouched by the environment record
    assert other.table.equals(same.table) and other.pairs.equals(same.pairs)


def test_a_cache_lists_the_environments_that_computed_its_clips(tmp_path, caplog):
    now = environment()
    older = {**now, "opencv": "5.0.0"}
    assert cache_environments(tmp_path, None, computed=True, reused=False) == [now]
    assert cache_environments(tmp_path, {"environments": [now]}, computed=False, reused=True) == [now]
    assert cache_environments(tmp_path, {"environments": [now]}, computed=True, reused=True) == [now]
    assert caplog.text == ""
    mixed = cache_environments(tmp_path, {"environments": [older]}, computed=True, reused=True)
    assert mixed == [older, now]
    assert f"2 environments (opencv 5.0.0 -> {now['opencv']})" in caplog.text
    # an older cache without the record, resumed: its clips' environment is unknown
    assert cache_environments(tmp_path, {"preprocess": {}}, computed=True, reused=True) == [None, now]
    assert "the first was not recorded" in caplog.text
    # everything recomputed: the earlier environments are gone with their clips
    assert cache_environments(tmp_path, {"environments": [older]}, computed=True, reused=False) == [now]


def test_checkpoints_record_their_environment():
    extra = checkpoint_extra(Config(), make_samples(n_subjects=2), [])
    assert extra["environment"] == environment()


def test_benchmark_rows_record_the_environment_and_widen_older_files(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    pd.DataFrame({"date": ["2026-01-01"], "numpy": ["1.0"], "score": ["0.5"]}).to_csv(
        tmp_path / "x.csv", index=False)
    common.record("x", [{"score": 0.75, "note": "new"}])
    table = pd.read_csv(tmp_path / "x.csv", dtype=str, keep_default_na=False)
    assert list(table.columns[:3]) == ["date", "numpy", "score"]
    assert table["numpy"].tolist() == ["1.0", np.__version__]
    assert table["score"].tolist() == ["0.5", "0.75"] and table["note"].tolist() == ["", "new"]
    assert table["scipy"].tolist() == ["", scipy.__version__]
