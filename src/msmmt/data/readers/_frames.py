"""Frame folders shared by the readers: numbered frames and layout roots.

Onset, apex and offset are resolved by :mod:`msmmt.core.keyframes` (one rule for every part).

A frame's number is the last run of digits in its file name's stem, so ``img10.jpg``
comes after ``img9.jpg``, ``reg_img46.jpg`` is frame 46 and ``006_05562.jpg`` is
frame 5562 -- the numbers the datasets' annotation sheets use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from msmmt.core.images import read_rgb
from msmmt.core.records import DatasetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

_NUMBER = re.compile(r"(\d+)\D*$")


def existing(path: str | Path, what: str) -> Path:
    """``path`` as a Path; a DatasetError naming it (and ``what`` it should be) if absent."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{what} {path} does not exist")
    return path


def readable_image(path: Path, what: str) -> Path:
    """``path`` if it is an image file that decodes; a DatasetError naming it (and ``what``
    it is) if it is absent, corrupt or not an image."""
    if not path.is_file():
        raise DatasetError(f"{what} {path} does not exist")
    try:
        read_rgb(path)
    except DatasetError as err:
        raise DatasetError(f"{what} {err}") from None
    return path


def existing_folder(path: str | Path, what: str) -> Path:
    """Like :func:`existing`, and also an error if ``path`` is not a folder."""
    path = existing(path, what)
    if not path.is_dir():
        raise DatasetError(f"{what} {path} is not a folder")
    return path


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of ``name`` by value (``s2`` before ``s10``)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def numbered_frames(folder: Path) -> tuple[tuple[Path, ...], tuple[int, ...]]:
    """The image files of ``folder`` and their frame numbers, sorted by number.

    Hidden files (``.DS_Store``, macOS ``._img1.jpg`` forks) and non-images are
    ignored. Raises DatasetError if the folder is missing, holds no numbered image,
    or two files carry the same number.
    """
    if not folder.is_dir():
        raise DatasetError(f"frame folder {folder} does not exist")
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        match = _NUMBER.search(path.stem)
        if match is None:
            continue
        number = int(match.group(1))
        if number in found:
            raise DatasetError(
                f"frame folder {folder}: {found[number].name} and {path.name} "
                f"both carry frame number {number}"
            )
        found[number] = path
    if not found:
        raise DatasetError(f"frame folder {folder} holds no numbered image files")
    numbers = tuple(sorted(found))
    return tuple(found[n] for n in numbers), numbers


def find_root(root: Path, is_root: Callable[[Path], bool], what: str) -> Path:
    """``root`` itself if ``is_root(root)``, else the one folder up to two levels below it that is.

    Lets ``read_dataset("casme2", "CASME2")`` find ``CASME2/CASME2_RAW_selected``.
    Raises DatasetError when none or several such folders are found.
    """
    root = existing_folder(root, "dataset root")
    if is_root(root):
        return root
    level = [root]
    for _ in range(2):
        level = sorted(
            (c for p in level for c in p.iterdir() if c.is_dir() and not c.name.startswith(".")),
            key=lambda p: natural_key(str(p)),
        )
        hits = [p for p in level if is_root(p)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise DatasetError(
                f"dataset root {root}: several folders hold {what}: "
                + ", ".join(str(h) for h in hits)
                + "; pass the one to use"
            )
    raise DatasetError(f"dataset root {root}: found no {what} in it or two levels below")


def has_subfolder(pattern: str) -> Callable[[Path], bool]:
    """Predicate: the folder has a sub-folder whose whole name matches ``pattern`` (any case)."""
    regex = re.compile(pattern, re.IGNORECASE)

    def check(folder: Path) -> bool:
        return any(c.is_dir() and regex.fullmatch(c.name) for c in folder.iterdir())

    return check
