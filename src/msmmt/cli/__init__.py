"""Command-line interface: ``msmmt`` and its subcommands (one module each)."""

from msmmt.cli import (  # noqa: F401  (registers subcommands)
    compare,
    config_cmd,
    demo,
    evaluate,
    model_cmds,
    preprocess,
    spot,
    synth,
)
from msmmt.cli.app import app

__all__ = ["app"]
