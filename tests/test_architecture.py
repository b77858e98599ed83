"""Data flows one way: no module imports from a layer above its own, not even inside a function.

The layers, lowest first (README "Code layout"):
core (config, records, labels, io) -> ops (image operations on arrays) -> data (readers,
synthetic clips) -> preprocess (clip pipeline, cache, batch) -> model -> engine (dataset,
augmentation, training loop, metrics) -> evaluation | inference (siblings: neither imports
the other) -> cli.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "msmmt"

RANK = {
    "core": 0,
    "ops": 1,
    "data": 2,
    "preprocess": 3,
    "model": 4,
    "engine": 5,
    "evaluation": 6,
    "inference": 6,
    "cli": 7,
}
"""A layer may import its own modules and those of lower rank; equal rank is not lower."""

PREFIXES = {
    "msmmt": "core",
    "msmmt.config": "core",
    "msmmt.core": "core",
    "msmmt.ops": "ops",
    "msmmt.data": "data",
    "msmmt.preprocess": "preprocess",
    "msmmt.model": "model",
    "msmmt.engine": "engine",
    "msmmt.evaluation": "evaluation",
    "msmmt.inference": "inference",
    "msmmt.cli": "cli",
    "msmmt.__main__": "cli",
}


def layer_of(module: str) -> str:
    """The layer of the longest prefix of ``module`` in PREFIXES (``msmmt.ops.face`` -> ``ops``)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in PREFIXES:
            return PREFIXES[prefix]
    raise KeyError(module)


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def msmmt_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``msmmt`` module imported anywhere in the file (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "msmmt"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "msmmt":
                continue
            for alias in node.names:  # `from msmmt.x import y` may import the module x.y
                sub = f"{target}.{alias.name}"
                exists = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").is_file()
                found.append((node.lineno, sub if exists else target))
    return found


def violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = layer_of(module_name(path))
        for line, target in msmmt_imports(path):
            other = layer_of(target)
            if other == me:
                continue
            if RANK[other] >= RANK[me]:
                rel = path.relative_to(SRC.parent)
                bad.append(f"{rel}:{line} ({me}) imports {target} ({other})")
    return bad


def test_every_module_belongs_to_a_layer():
    for path in SRC.rglob("*.py"):
        layer_of(module_name(path))  # raises KeyError for a module outside the table


def test_no_import_goes_up_or_sideways():
    assert violations() == []


def test_the_check_catches_an_upward_import_inside_a_function(tmp_path):
    pkg = tmp_path / "msmmt"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "engine").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "engine" / "trainer.py").write_text("def fit():\n    pass\n")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "face.py").write_text("def f():\n    from msmmt.engine.trainer import fit\n")
    global SRC
    saved, SRC = SRC, pkg
    try:
        assert violations(pkg) == ["msmmt/ops/face.py:2 (ops) imports msmmt.engine.trainer (engine)"]
    finally:
        SRC = saved


@pytest.mark.parametrize(
    ("module", "layer"),
    [("msmmt.ops.face", "ops"), ("msmmt.config", "core"), ("msmmt", "core"), ("msmmt.__main__", "cli")],
)
def test_layer_of(module, layer):
    assert layer_of(module) == layer
