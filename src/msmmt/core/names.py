"""Names turned into file names, and names compared ignoring case and punctuation."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["file_safe", "squash"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def file_safe(text: str) -> str:
    """``text`` as one file-name component: each run of characters other than letters,
    digits, ``.``, ``_`` and ``-`` becomes ``_``, and leading / trailing ``.`` and ``_``
    are dropped (so no ``..`` or hidden names): ``casme2/sub01`` -> ``casme2_sub01``.
    Empty when nothing is left."""
    return _UNSAFE.sub("_", text).strip("._")


def squash(name: Any) -> str:
    """``name`` lower-cased with everything but letters and digits removed, for matching
    headers and folder names loosely: ``"CASME II"`` and ``"casme_ii"`` -> ``"casmeii"``;
    None -> ``""``."""
    return _NOT_ALNUM.sub("", str(name).lower()) if name is not None else ""
