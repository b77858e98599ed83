"""Command-line interface: ``msmmt`` and its subcommands (one module each)."""

from msmmt.cli import config_cmd, demo, evaluate, model_cmds, preprocess, synth  # noqa: F401  (registers subcommands)
from msmmt.cli.app import app

__all__ = ["app"]
