"""A torch Dataset over the precomputed modality images of each clip.

Each sample carries a texture image (dynamic image, or an apex crop standing in for
it) and a motion image (u, v, strain); both are decoded once, resized to the
model's base size and kept in memory as uint8, in a process-wide cache keyed by
file, modification time and size, so the many folds of a LOSO run never decode
an image twice. Items are ``(texture, motion, label_index)`` with float images
3 x S x S in [0, 1] (greyscale replicated to 3 channels).

Augmentation (:mod:`msmmt.engine.augment`) draws its parameters from a
generator seeded by (seed, epoch, index), so a run is reproducible whatever the
number of loader workers or the order of the items; call :meth:`set_epoch` at the
start of each epoch for fresh draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from msmmt.config import AugmentConfig
from msmmt.core.images import read_rgb
from msmmt.core.labels import label_indices
from msmmt.core.records import DatasetError, Sample
from msmmt.engine.augment import apply_pair, random_params
from msmmt.ops.scaling import resize_square

__all__ = ["ModalityDataset", "load_image", "to_tensor"]


def to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """H x W (grey) or H x W x 3 uint8 RGB -> 3 x size x size float tensor in [0, 1]."""
    return _to_float(_rgb_square(image, size))


def _to_float(image: np.ndarray) -> torch.Tensor:
    # torch.tensor copies, so read-only cached arrays are never shared with the caller.
    return torch.tensor(image).permute(2, 0, 1).float().div_(255.0)


def _rgb_square(image: np.ndarray, size: int) -> np.ndarray:
    """Grey replicated to 3 channels, then :func:`~msmmt.ops.scaling.resize_square`."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an H x W or H x W x 3 uint8 image, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(resize_square(img, size))


@lru_cache(maxsize=8192)
def _decode(path: str, mtime_ns: int, nbytes: int, size: int) -> np.ndarray:
    # mtime and size are part of the key so a rewritten file is decoded again.
    out = _rgb_square(read_rgb(path), size)
    out.flags.writeable = False
    return out


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode ``path`` to a size x size x 3 uint8 RGB array (cached, read-only)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DatasetError(f"{path}: image file not found") from None
    return _decode(str(path), st.st_mtime_ns, st.st_size, size)


class ModalityDataset(Dataset):
    """``(texture, motion, label_index)`` for each sample's precomputed images.

    ``class_names`` None gives label index -1 (unlabelled clips, for prediction).
    ``augment`` None (or evaluation) leaves the images as they are.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        class_names: Sequence[str] | None,
        image_size: int,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        if class_names is None:
            self.labels = np.full(len(self.samples), -1, dtype=np.int64)
        else:
            self.labels = label_indices(
                [s.label for s in self.samples], class_names, [s.key for s in self.samples]
            )
        self.texture = [self._load(s, "texture_image") for s in self.samples]
        self.motion = [self._load(s, "motion_image") for s in self.samples]

    def _load(self, sample: Sample, field: str) -> np.ndarray:
        path = getattr(sample, field)
        if path is None:
            raise DatasetError(
                f"{sample.key}: no {field.replace('_', ' ')}; preprocess the clips first "
                "(msmmt preprocess) and train on the cache's manifest"
            )
        return load_image(path, self.image_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation draws of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        texture, motion = _to_float(self.texture[i]), _to_float(self.motion[i])
        if self.augment is not None:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFF_FFFF_FFFF)
            texture, motion = apply_pair(texture, motion, random_params(self.augment, g))
        return texture, motion, int(self.labels[i])
