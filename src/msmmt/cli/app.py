"""The ``msmmt`` command: global options, shared state and error handling.

Subcommands live in one module each (``synth``, ``preprocess``, ...) and register
themselves on :data:`app`. Global options come before the subcommand::

    msmmt --config cpu-small --set loss.alpha=0.2 --seed 1 loso --data CACHE --out runs/x
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from msmmt.config import Config, ConfigError, load_config
from msmmt.core.threads import limit_threads

app = typer.Typer(
    name="msmmt",
    help=(
        "Facial micro-expression recognition with MSMMT, a multi-scale multi-modal "
        "vision transformer over a dynamic image and an optical-flow/strain image of each clip.\n\n"
        "Quick start: `msmmt demo` synthesises a small dataset, preprocesses it, runs "
        "leave-one-subject-out evaluation and writes a report."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("msmmt")


@dataclass
class GlobalOptions:
    config: str | None = None
    out: Path | None = None
    seed: int | None = None
    device: str | None = None
    overrides: list[str] = field(default_factory=list)
    verbosity: int = 0
    threads: int | None = None

    def load(self, config: str | Path | None = None) -> Config:
        """The run's config: ``config`` (or the global ``--config``), then ``--set``,
        ``--seed`` and ``--device``. Raises :class:`ConfigError` with the key at fault."""
        overrides = list(self.overrides)
        if self.seed is not None:
            overrides.append(f"seed={self.seed}")
        if self.device is not None:
            overrides.append(f"device={self.device}")
        return load_config(config if config is not None else self.config, overrides)


STATE = GlobalOptions()

# Arguments shared by the commands that train (train, loso).
CONFIG_ARG = typer.Argument(help="Preset name or YAML file (default: the global --config).")
DATA_OPT = typer.Option(
    "--data", metavar="PATH", help="Preprocessed data: a cache folder or its manifest.csv (msmmt preprocess); "
    "with --dataset composite-release, the release's folder or its CSV."
)
DATASET_OPT = typer.Option(metavar="precomputed|composite-release", help="Reader of --data: precomputed or composite-release.")
# Where the work runs (loso, preprocess).
EXECUTOR_OPT = typer.Option(
    metavar="local|ray", help="local: in this process; ray: every fold / clip batch a Ray task "
    "(pip install 'msmmt[ray]'), each of --threads CPUs (default 1) and 1 GPU on CUDA."
)
ADDRESS_OPT = typer.Option(
    metavar="auto|HOST:PORT", help="Ray cluster to join: auto (the one `ray start --head` runs here) or HOST:PORT. "
    "Default: start a local Ray of --workers x --threads CPUs."
)
RETRIES_OPT = typer.Option(
    min=0, metavar="N", help="Retry a failed fold / clip batch (or a died task) N times."
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def main(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PRESET|FILE",
            help="Preset name (paper, cpu-small, demo) or YAML file.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="Default output directory of commands."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(metavar="INT", help="Random seed (overrides the config's).")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(metavar="auto|cpu|cuda", help="Compute device (overrides the config's)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config key, e.g. --set loss.alpha=0.2 (repeatable).",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            help="CPU threads for PyTorch and OpenCV (default: all cores). Use 1 when the "
            "machine is shared: oversubscribed threads slow training many times over.",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    if device is not None and device not in {"auto", "cpu", "cuda"}:
        raise fail(f"--device {device}: expected auto, cpu or cuda")
    STATE.config, STATE.out, STATE.seed, STATE.device = config, out, seed, device
    STATE.overrides = list(set_ or [])
    STATE.verbosity = -1 if quiet else verbose
    STATE.threads = threads
    if threads is not None:
        limit_threads(threads)
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def load_or_fail(config: str | Path | None = None) -> Config:
    try:
        return STATE.load(config)
    except ConfigError as err:
        raise fail(str(err)) from None


def load_predictor(model_dir: Path):
    """The :class:`~msmmt.inference.predict.Predictor` of ``model_dir`` on the global
    ``--device`` (default: the CPU), or a one-line failure; a note (stderr) when its model
    was trained on apex face crops."""
    from msmmt.inference.predict import Predictor
    from msmmt.model.checkpoint import CheckpointError

    if not model_dir.exists():
        raise fail(f"{model_dir}: no such checkpoint folder")
    try:
        predictor = Predictor(model_dir, device=STATE.device or "cpu")
    except CheckpointError as err:
        raise fail(f"not a usable checkpoint: {err}") from None
    except ConfigError as err:
        raise fail(str(err)) from None
    if predictor.texture_is_apex:
        typer.echo(
            "note: the model was trained on apex face crops as texture images: using the "
            "aligned apex face; its motion images came from another flow pipeline than ours",
            err=True,
        )
    return predictor


def check_pretrained(cfg: Config) -> None:
    """Fail with one line when ``model.pretrained`` names a local file that cannot be opened."""
    path = cfg.model.pretrained
    if path is None or path == "timm":
        return
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as err:
        raise fail(f"model.pretrained {path}: cannot read it ({err.strerror or err})") from None


def output_dir(explicit: Path | None, default: str) -> Path:
    """The command's output folder: its own ``--out``, else the global one, else ``default``
    (checked by :func:`check_folder`)."""
    return check_folder(Path(explicit or STATE.out or default))


def check_folder(path: Path) -> Path:
    """``path``, a folder to write into; a one-line failure when a file is there."""
    if path.exists() and not path.is_dir():
        raise fail(f"{path}: exists and is not a folder (a folder to write into is expected)")
    return path


def check_writable(path: Path, option: str = "--out", folder: bool = False) -> Path:
    """``path``, a file (with ``folder``: a folder) to be written, checked before any work:
    a one-line failure when a file stands where it or one of its folders would be, or the
    nearest existing folder cannot be written into."""
    full = path.absolute()
    existing = next(p for p in ((full, *full.parents) if folder else full.parents) if p.exists())
    if not existing.is_dir():
        raise fail(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise fail(f"{option} {path}: cannot write into {existing} (permission denied)")
    return path
