"""The command line: every command explains itself; global options reach the config."""

import re

import pytest
from typer.testing import CliRunner

from msmmt.cli import app

runner = CliRunner()


def _commands():
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in _commands():
        assert name in result.output


@pytest.mark.parametrize("name", _commands())
def test_every_subcommand_has_help(name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.splitlines()) > 3


@pytest.mark.parametrize("name", _commands())
def test_options_show_what_to_type_not_python_types(name):
    """An option's placeholder names what to type (N, local|ray, I/N), not typer's type label."""
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    options = [line for line in result.output.splitlines() if line.lstrip().startswith("-")]
    assert options
    for line in options:
        assert not re.search(r"<(int range|float range|str|list\[)", line), line


def test_global_options_reach_the_config():
    result = runner.invoke(app, ["--seed", "5", "--device", "cpu", "--set", "loss.alpha=0.3", "config", "demo"])
    assert result.exit_code == 0, result.output
    assert "seed: 5" in result.output and "device: cpu" in result.output
    assert "alpha: 0.3" in result.output


def test_bad_config_key_is_a_clear_error():
    result = runner.invoke(app, ["--set", "model.nope=1", "config", "demo"])
    assert result.exit_code == 2
    assert "model.nope: unknown key" in result.output


def test_bad_device_is_rejected():
    result = runner.invoke(app, ["--device", "tpu", "config"])
    assert result.exit_code == 2
    assert "--device tpu" in result.output


def test_threads_option_limits_torch_and_opencv():
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(2)
        cv2.setNumThreads(2)
        result = runner.invoke(app, ["--threads", "1", "config", "demo"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert runner.invoke(app, ["--threads", "0", "config"]).exit_code == 2
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


@pytest.mark.parametrize(
    "args",
    [
        ["train", "demo", "--data", "{tmp}", "--out", "{file}"],
        ["loso", "demo", "--data", "{tmp}", "--out", "{file}"],
        ["loso", "demo", "--data", "{tmp}", "--out", "{file}", "--seeds", "0,1"],
        ["compare", "{tmp}/run-a", "{tmp}/run-b", "--out", "{file}"],
        ["preprocess", "synthetic", "{tmp}", "--out", "{file}"],
        ["demo", "--out", "{file}"],
        ["--out", "{file}", "train", "demo", "--data", "{tmp}"],
    ],
)
def test_an_out_folder_that_is_a_file_is_refused_before_any_work(tmp_path, args):
    file = tmp_path / "results.png"
    file.write_bytes(b"mine")
    args = [a.format(tmp=tmp_path, file=file) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"error: {file}: exists and is not a folder (a folder to write into is expected)"
    )
    assert file.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.png"]


@pytest.mark.parametrize(
    ("name", "default"), [("train", "runs/model"), ("loso", "runs/loso"), ("demo", "runs/demo")]
)
def test_help_states_the_default_output_folder(name, default):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert f"(default {default})" in " ".join(result.output.split())
