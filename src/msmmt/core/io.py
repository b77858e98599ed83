"""Atomic writes: a temp file (or folder) in the same folder, then ``os.replace``.

Every cache entry, fold result and checkpoint goes through these, so an
interrupted run never leaves a half-written file behind a valid name. Files get
the mode an ordinary ``open`` would give them (``0o666 & ~umask``), not
``mkstemp``'s 0600, so a cache or run folder can be shared as the umask allows.
A temporary file's name carries the host and process that write it
(``.NAME.tmp-HOST-PID-XXXX.SUFFIX``): :func:`remove_stale_temporaries` deletes
those left behind by a killed process of this host, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_folder",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "default_mode",
    "file_digest",
    "remove_stale_temporaries",
]

_UMASK_LOCK = threading.Lock()
_HOST = re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"^\..+\.tmp-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[^.]+(\.[^.]*)?$")


def default_mode(directory: bool = False) -> int:
    """The mode ``open`` (``0o666``) or ``mkdir`` (``0o777``) would give under the current umask."""
    with _UMASK_LOCK:  # reading the umask means setting it: keep other threads out
        umask = os.umask(0o022)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the target's, so writers that pick a format from the
    extension (OpenCV, matplotlib, pandas) still do so. The file ends up with
    :func:`default_mode`, also when the writer replaced the temporary file (safetensors'
    ``save_file`` does, with mode 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.tmp-{_HOST}-{os.getpid()}-",
        suffix=suffix or path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (an
    existing folder there is removed first). Named like :func:`atomic_path`'s files, so
    :func:`remove_stale_temporaries` finds one left by a killed process; mode as ``mkdir``'s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{_HOST}-{os.getpid()}-", dir=path.parent))
    try:
        os.chmod(tmp, default_mode(directory=True))  # mkdtemp's 0700 would ignore the umask
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(root: str | Path) -> list[Path]:
    """Delete the temporary files and folders under ``root`` left by killed writers;
    return them.

    Only names made by :func:`atomic_path` / :func:`atomic_folder` on this host whose
    process is gone are removed: a temporary of a live run (this one, or another on the
    same cache) and anything written by another host are left alone.
    """
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            m = _TEMP.match(name)
            if m and m["host"] == _HOST and not _alive(int(m["pid"])):
                path = Path(folder, name)
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        dirs[:] = [d for d in dirs if Path(folder, d).exists()]
    return removed


def file_digest(paths: Sequence[str | Path], content: bool = False) -> str:
    """A short hash of files: of their bytes (``content=True``), else of each one's
    name, size and modification time (cheap: a stat per file)."""
    h = hashlib.sha1()
    for path in paths:
        if content:
            h.update(hashlib.sha1(Path(path).read_bytes()).digest())
        else:
            st = Path(path).stat()
            h.update(json.dumps([Path(path).name, st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:16]


def _write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
