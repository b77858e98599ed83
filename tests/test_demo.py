"""`msmmt demo` end to end on a very small synthetic set, and its resume."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from msmmt.cli import app

runner = CliRunner()
SMALL = ["--set", "train.epochs=2", "--set", "model.depth=2"]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path):
    args = [*SMALL, "demo", "--out", str(tmp_path), "--subjects", "2", "--clips-per-subject", "3"]
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert step in result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "leave-one-subject-out" in report
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics.loc[metrics.part == "all", "n"].item() == 6
    assert {"acc", "uar", "uf1"} <= set(metrics.columns)
    assert len(pd.read_csv(tmp_path / "cache" / "manifest.csv")) == 6
    done = sorted((tmp_path / "run" / "folds").glob("*/done.json"))
    assert len(done) == 2
    stamps = [p.stat().st_mtime_ns for p in done]

    again = runner.invoke(app, [*args, "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output
    assert [p.stat().st_mtime_ns for p in done] == stamps  # no fold redone

    other = runner.invoke(app, ["--set", "train.epochs=3", *args[2:], "--workers", "1"])
    assert other.exit_code == 2
    assert "use another --out" in other.output

    # a cache rebuilt by another msmmt version (other image bytes): the stale run is kept
    # aside and the demo runs afresh instead of refusing
    image = pd.read_csv(tmp_path / "cache" / "manifest.csv")["motion_image"][0]
    path = tmp_path / "cache" / image if not image.startswith("/") else image
    with open(path, "ab") as fh:
        fh.write(b"\0")
    upgraded = runner.invoke(app, [*args, "--workers", "1"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "moved to" in upgraded.output
    assert sorted((tmp_path / "run.outdated-1" / "folds").glob("*/done.json"))
    assert len(sorted((tmp_path / "run" / "folds").glob("*/done.json"))) == 2



@pytest.mark.slow
def test_demo_scores_do_not_depend_on_the_core_count(tmp_path):
    """The same demo on 1 and on 2 default threads (as on machines with 1 or 2 cores) gives
    byte-identical predictions (docs/RELIABILITY.md, "Reproducibility")."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    args = [*SMALL, "demo", "--subjects", "2", "--clips-per-subject", "3", "--workers", "1"]

    def demo(out: Path, threads: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": threads}
        cmd = [sys.executable, "-m", "msmmt", "-q", *args, "--out", str(out)]
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)

    demo(tmp_path / "a", "1")
    for part in ("data", "cache"):  # the same clips and images: only training differs
        shutil.copytree(tmp_path / "a" / part, tmp_path / "b" / part)
    demo(tmp_path / "b", "2")
    for fold in sorted((tmp_path / "a" / "run" / "folds").iterdir()):
        other = tmp_path / "b" / "run" / "folds" / fold.name
        assert (fold / "predictions.csv").read_bytes() == (other / "predictions.csv").read_bytes()


def test_demo_refuses_a_folder_it_did_not_make_and_keeps_the_users_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("mine")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.txt").write_text("mine too")
    (tmp_path / "cache").mkdir()
    result = runner.invoke(app, [*SMALL, "demo", "-o", str(tmp_path), "--subjects", "2"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {tmp_path / 'data'}: folder is not empty")
    assert "[1/4]" not in result.output
    assert (tmp_path / "data" / "a.txt").read_text() == "mine"
    assert (tmp_path / "run" / "results.txt").read_text() == "mine too"
    assert (tmp_path / "cache").is_dir()

    # no data folder, but a run folder that the demo cannot have made: kept too
    (tmp_path / "data" / "a.txt").unlink()
    result = runner.invoke(app, [*SMALL, "demo", "-o", str(tmp_path), "--subjects", "2"])
    assert result.exit_code == 2, result.output
    assert f"error: {tmp_path / 'run'}: not empty" in result.output
    assert (tmp_path / "run" / "results.txt").read_text() == "mine too"


@pytest.mark.parametrize(
    ("option", "value", "minimum"),
    [
        ("--subjects", "0", 2),
        ("--subjects", "1", 2),  # LOSO needs two subjects
        ("--clips-per-subject", "0", 1),
        ("--workers", "0", 1),
    ],
)
def test_demo_sizes_are_checked_before_any_work(tmp_path, option, value, minimum):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "d"), option, value])
    assert result.exit_code == 2
    assert option in result.output and f"greater than or equal to {minimum}" in result.output
    assert not (tmp_path / "d").exists()


def test_a_failing_fold_of_the_demo_is_a_short_error(tmp_path, monkeypatch):
    import msmmt.evaluation.fit_predict as fit_predict

    def broken(cfg):
        def fit(*args):
            raise RuntimeError("out of memory")

        return fit

    monkeypatch.setattr(fit_predict, "fit_predict_for", broken)
    args = ["demo", "-o", str(tmp_path), "--subjects", "2", "--clips-per-subject", "1"]
    result = runner.invoke(app, ["-q", *SMALL, *args, "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not the fold's error: no traceback
    assert "error: 2 fold(s) failed:" in result.output and "out of memory" in result.output
    assert "rerun the same command to retry them" in result.output
