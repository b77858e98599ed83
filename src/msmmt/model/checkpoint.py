"""Save and load a trained MSMMT: weights as safetensors, the run's config as JSON.

A checkpoint is a folder::

    model.safetensors   the model's state dict (tensors only: loading runs no code)
    config.json         the whole run Config (the model is rebuilt from its ``model`` section)
    extra.json          optional: class names, fold, metrics... (any JSON)

Each file is written atomically (:func:`msmmt.core.io.atomic_path`); ``config.json`` is
written last, so a folder with a config holds complete weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from msmmt.config import Config, format_errors
from msmmt.core.io import atomic_path, atomic_write_json
from msmmt.model.build import build_model
from msmmt.model.ensemble import SeedEnsemble
from msmmt.model.msmmt import MSMMT

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
EXTRA = "extra.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or corrupt; the message names the file."""


def save_checkpoint(
    model: MSMMT | SeedEnsemble,
    config: Config,
    directory: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights, ``config`` and ``extra`` into ``directory``; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    if extra is not None:
        atomic_write_json(directory / EXTRA, extra)
    else:
        (directory / EXTRA).unlink(missing_ok=True)
    atomic_write_json(directory / CONFIG, config.model_dump(mode="json"))
    return directory


def load_checkpoint(
    directory: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[MSMMT | SeedEnsemble, Config, dict[str, Any]]:
    """Rebuild the model of a checkpoint folder and load its weights.

    The model is built from the saved config with ``pretrained`` set to None, so
    nothing is downloaded or read besides the folder. Returns ``(model, config,
    extra)`` with the model in eval mode on ``map_location`` and ``extra`` ``{}`` when
    the folder has none.
    """
    directory = Path(directory)
    try:
        config = Config.model_validate(_read_json(directory / CONFIG, "config"))
    except ValidationError as err:
        raise CheckpointError(
            _one_line(format_errors(err, str(directory / CONFIG)).splitlines())
        ) from err
    extra_path = directory / EXTRA
    extra = _read_json(extra_path, "extra") if extra_path.exists() else {}
    if not isinstance(extra, dict):
        raise CheckpointError(f"{extra_path}: expected a JSON object, got {type(extra).__name__}")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: checkpoint weights not found")
    try:
        state = load_file(str(weights), device=str(map_location))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from err
    model_cfg = config.model.model_copy(update={"pretrained": None})
    model = build_model(model_cfg)
    problems = _mismatches(model.state_dict(), state)
    if problems:
        raise CheckpointError(
            f"{weights}: weights do not match {directory / CONFIG}: {_one_line(problems)}"
        )
    model.load_state_dict(state)
    return model.to(map_location).eval(), config, extra


def _one_line(problems: list[str]) -> str:
    """The first of several problems, and how many more there are."""
    first, *rest = problems
    return first + (f" (and {len(rest)} more)" if rest else "")


def _mismatches(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """How the tensors ``found`` in a file differ from the ``expected`` state of the model:
    missing and unexpected keys, then tensors of another shape (``load_state_dict``'s
    checks, without its pages of text)."""

    def shape(t: torch.Tensor) -> str:
        return ", ".join(map(str, t.shape))

    return [
        *(f"missing key {k}" for k in expected if k not in found),
        *(f"unexpected key {k}" for k in found if k not in expected),
        *(f"size mismatch for {k}: ({shape(found[k])}) in the file, ({shape(v)}) in the model"
          for k, v in expected.items() if k in found and found[k].shape != v.shape),
    ]


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint {what} file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: checkpoint {what} is not valid JSON ({err})") from err
    return data
