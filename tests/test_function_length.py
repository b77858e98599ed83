"""No function in src/ has a body of 60 lines or more: long functions hide several jobs.

The body is counted from its first statement (the docstring, if any) to its last line,
so a declarative signature (typer options) does not count.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "msmmt"
LIMIT = 60

EXCLUDED: dict[str, str] = {}
"""Paths (relative to src/msmmt) left out of the check, with the reason; none today."""


def long_functions(root: Path = SRC, excluded=EXCLUDED) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(rel == e or rel.startswith(e + "/") for e in excluded):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.body[0].lineno + 1
                if length >= LIMIT:
                    out.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    return out


def test_every_function_body_is_under_60_lines():
    assert long_functions() == []


def test_the_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "skipped.py").write_text(f"def h():\n{body}\n")
    assert long_functions(tmp_path, excluded={"model"}) == [f"long.py:1 f: {LIMIT} lines"]
