"""The software and machine a result was computed with, recorded beside the result.

A score depends on more than msmmt's code and settings. Measured on this project's machines:
a fresh environment that installed OpenCV 5.1.0 instead of 5.0.0 moved the demo's UF1 from
0.809 to 0.776 for the same code, and a later fresh environment with the same OpenCV, NumPy and
PyTorch versions regenerated the composite-like benchmark from the same settings and seed with
other pixels (its SVM baseline 0.709 -> 0.727) and printed a demo UF1 of 0.813. What differed
was not recorded, so it cannot be named any more. Every synthetic set (``synthetic.json``),
preprocessing cache (``manifest.json``), finished fold (``done.json``) and checkpoint
(``extra.json``) therefore records :func:`environment`; reports and comparisons name the
entries in which their parts differ (:func:`differences`, :func:`varying`). docs/RELIABILITY.md,
"Environment".
"""

from __future__ import annotations

import functools
import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import msmmt

__all__ = ["LIBRARIES", "consensus", "describe_varying", "differences", "environment", "varying"]

LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "scikit-learn": ("scikit-learn",),
    "scikit-image": ("scikit-image",),
    "opencv": ("opencv-contrib-python-headless", "opencv-contrib-python",
               "opencv-python-headless", "opencv-python"),
    "dlib": ("dlib-bin", "dlib"),
    "timm": ("timm",),
    "pillow": ("pillow",),
}
"""Entry name -> the distributions that provide it (the first one installed is reported)."""

_SIMD = ("avx512f", "avx2", "avx", "sse4_2", "asimd", "neon")
"""Vector instruction sets, widest first: kernels (and so floating-point results) differ by them."""


def _library(distributions: tuple[str, ...]) -> str:
    for name in distributions:
        try:
            return metadata.version(name) + ("" if name == distributions[0] else f" ({name})")
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _cpu() -> str:
    """The CPU's model name and its widest vector instruction set (Linux), else the architecture."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    have = set(flags.group(1).split()) if flags else set()
    simd = next((s for s in _SIMD if s in have), None)
    name = model.group(1).strip() if model else platform.machine()
    return f"{name}, {simd}" if simd else name


def _commit() -> str | None:
    """The git commit of msmmt's source tree, ``+modified`` when tracked files were changed;
    None outside a git checkout (an installed wheel)."""
    root = Path(msmmt.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+modified" if dirty else "")


@functools.cache
def _static() -> tuple[tuple[str, str], ...]:
    entries = {
        "msmmt": msmmt.__version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu": _cpu(),
        **{key: _library(dists) for key, dists in LIBRARIES.items()},
    }
    commit = _commit()
    if commit is not None:
        entries["msmmt_commit"] = commit
    return tuple(entries.items())


def environment() -> dict[str, str]:
    """This process's software and machine: msmmt's version (and git commit in a checkout),
    Python, the operating system, the CPU (model, widest vector instruction set) and the
    versions of the libraries in :data:`LIBRARIES`. Computed once per process."""
    return dict(_static())


def differences(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """The entries in which two environments differ, as ``"key A -> B"`` (``?``: not recorded)."""
    keys = sorted(set(a) | set(b))
    return [f"{k} {a.get(k, '?')} -> {b.get(k, '?')}" for k in keys if a.get(k) != b.get(k)]


def varying(envs: Mapping[str, Mapping[str, str] | None]) -> dict[str, dict[str, list[str]]]:
    """Over named environments (None: not recorded), the entries that differ.

    Returns ``{key: {value: [names]}}`` for each entry whose value is not the same for all
    recorded environments (a missing entry reads ``"not recorded"``), led by
    ``{"environment": {"recorded": [...], "not recorded": [...]}}`` when only some names have one;
    empty when all agree.
    """
    recorded = {name: env for name, env in envs.items() if env is not None}
    missing = [name for name, env in envs.items() if env is None]
    out: dict[str, dict[str, list[str]]] = {}
    if missing and recorded:
        out["environment"] = {"recorded": list(recorded), "not recorded": missing}
    for key in sorted({k for env in recorded.values() for k in env}):
        values: dict[str, list[str]] = {}
        for name, env in recorded.items():
            values.setdefault(env.get(key, "not recorded"), []).append(name)
        if len(values) > 1:
            out[key] = values
    return out


def consensus(envs: Mapping[str, Mapping[str, str] | None], mixed: str | None = None) -> dict[str, str] | None:
    """The entries of the recorded environments among ``envs`` (None: not recorded) with one value
    in all of them; an entry that varies is dropped, or set to ``mixed`` when given. None when no
    environment is recorded."""
    recorded = {name: env for name, env in envs.items() if env is not None}
    if not recorded:
        return None
    spread = varying(recorded)
    first = next(iter(recorded.values()))
    return {k: mixed if k in spread else v for k, v in first.items() if mixed is not None or k not in spread}


def describe_varying(spread: Mapping[str, Mapping[str, list[str]]], what: str, limit: int = 3) -> list[str]:
    """One line per varying entry: ``numpy: 2.4.5 (30 folds: a, b, c, ...); 2.4.6 (1 fold: d)``
    (``what``: the singular, ``fold`` or ``run``)."""
    lines = []
    for key, values in spread.items():
        parts = []
        for value, names in values.items():
            shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
            noun = what if len(names) == 1 else f"{what}s"
            parts.append(f"{value} ({len(names)} {noun}: {shown})")
        lines.append(f"{key}: " + "; ".join(parts))
    return lines
