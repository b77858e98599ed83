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
