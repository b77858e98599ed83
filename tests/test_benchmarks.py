"""`make bench` runs the benchmarks that make their own data; every other benchmark script
analyses inputs it is given and must refuse to start without them (so none is forgotten)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_bench_list() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^BENCH_SELF := ((?:.*\\\n)*.*)$", text, flags=re.M)
    assert match, "Makefile has no BENCH_SELF list"
    return set(match.group(1).replace("\\\n", " ").split())


def _scripts() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in (ROOT / "benchmarks").glob("bench_*.py")}


def test_make_bench_lists_only_existing_scripts():
    listed = _make_bench_list()
    assert listed and listed <= set(_scripts()), listed - set(_scripts())


@pytest.mark.slow
def test_every_script_left_out_of_make_bench_requires_arguments():
    listed = _make_bench_list()
    for name, path in sorted(_scripts().items()):
        if name in listed:
            continue
        done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              timeout=300, cwd=ROOT)
        assert done.returncode == 2 and "required" in done.stderr, (
            f"{path.name} runs without arguments: add it to BENCH_SELF in the Makefile\n"
            f"{done.stderr[-500:]}")
