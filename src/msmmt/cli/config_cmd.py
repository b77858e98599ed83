"""``msmmt config``: print the resolved configuration of a preset or file."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from msmmt.cli.app import app, load_or_fail
from msmmt.config import list_presets


@app.command("config")
def show_config(
    config: Annotated[
        str | None, typer.Argument(help="Preset name or YAML file (default: the global --config).")
    ] = None,
    presets: Annotated[bool, typer.Option("--list", help="List the built-in presets.")] = False,
) -> None:
    """Print the full configuration after presets, --set, --seed and --device are applied."""
    if presets:
        typer.echo("\n".join(list_presets()))
        return
    cfg = load_or_fail(config)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())
