"""Running a trained model on new clips: :class:`Predictor`.

A predictor loads a checkpoint once (weights, config, class names, preprocessing
settings) and then analyses any number of clips, each preprocessed exactly as the
training clips were (face alignment, magnification, dynamic image, TV-L1 flow and
strain, with the checkpoint's ``preprocess`` settings)::

    from msmmt.inference.predict import Predictor

    predictor = Predictor("runs/model")
    result = predictor.analyse("clips/EP02_01f")      # or a video file
    print(result.label, result.probabilities)

:meth:`Predictor.analyse_frames` does the same for frames already decoded (the intervals
of a long video, :func:`msmmt.inference.spot.classify_intervals`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msmmt.config import Config
from msmmt.core.keyframes import sample_key_frames
from msmmt.core.labels import class_names
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers import load_frames, read_clip
from msmmt.engine.dataset import to_tensor
from msmmt.engine.runtime import select_device
from msmmt.model.checkpoint import CheckpointError, load_checkpoint
from msmmt.preprocess.clip import ClipImages, process_clip

__all__ = ["Analysis", "Predictor"]

log = logging.getLogger(__name__)

ESTIMATE_FRAMES = 3
"""Frames from onset to offset that the apex estimate needs (the motion signal is smoothed
over 3 frames)."""


@dataclass
class Analysis:
    """What the model made of one clip."""

    sample: Sample
    """The clip's record: frames, onset/apex/offset and what was assumed (``extra["assumed"]``)."""
    images: ClipImages
    """texture (as the model saw it), motion, aligned apex face."""
    probabilities: np.ndarray
    """(C,) class probabilities, in the order of :attr:`Predictor.class_names`."""
    label: str
    output: Any
    """The model's MSMMTOutput for the clip (a batch of one); ``patch_weights`` for explanations."""

    @property
    def marks(self) -> str:
        """Onset, apex and offset in words, with what was assumed."""
        s = self.sample
        text = f"onset {s.onset}, apex {s.apex}, offset {s.offset}"
        assumed = s.extra.get("assumed")
        return f"{text} (assumed: {assumed})" if assumed else text


def _with_estimated_apex(sample: Sample, numbers: list[int], estimate: dict) -> Sample:
    """``sample`` with the estimated apex (frame number) and ``assumed`` saying how it was found."""
    apex = numbers[estimate["apex"]]
    said = [a for a in sample.extra.get("assumed", "").split("; ") if a and not a.startswith("apex")]
    said.append(
        f"apex = frame {apex}, estimated from {estimate['method']} (motion from frame "
        f"{numbers[estimate['onset']]} to {numbers[estimate['offset']]})"
    )
    extra = {**sample.extra, "assumed": "; ".join(said)}
    return dataclasses.replace(sample, apex=apex, apex_estimated=True, extra=extra)


def _class_names(extra: dict, config: Config, model_dir: Path) -> list[str]:
    """The checkpoint's class names (extra.json, else the config's class set), one per output."""
    names = extra.get("class_names") or list(class_names(config.data.class_set))
    n = config.model.num_classes
    if not (isinstance(names, list) and len(names) == n and all(isinstance(c, str) for c in names)):
        raise CheckpointError(
            f"{model_dir / 'extra.json'}: class_names {names!r} must be a list of {n} names, "
            "one per output of the model"
        )
    return names


def _check_motion(sample: Sample, where: str, estimate: bool) -> None:
    """Refuse a clip in which nothing can move: one frame from onset to offset, or the apex
    on the onset. With ``estimate`` the apex is still to be estimated from the motion: its
    provisional value (the middle frame) is not held against the clip, but the estimate
    needs :data:`ESTIMATE_FRAMES` frames."""
    used = [n for n in sample.frame_numbers if sample.onset <= n <= sample.offset]
    if len(used) < 2 or (sample.apex == sample.onset and not estimate):
        raise DatasetError(
            f"{where}: {len(used)} frame(s) from onset {sample.onset} to offset {sample.offset}, "
            f"apex {sample.apex}: a micro-expression needs frames after the onset and an apex "
            "after it (the flow from onset to apex would be zero)"
        )
    if estimate and len(used) < ESTIMATE_FRAMES:
        raise DatasetError(
            f"{where}: {len(used)} frames from onset {sample.onset} to offset {sample.offset}: "
            f"too few to estimate the apex from the facial motion (at least {ESTIMATE_FRAMES}); "
            "give the apex (--apex)"
        )


def _check_estimate(sample: Sample, where: str) -> None:
    """Refuse an apex estimated on the onset (the flow from onset to apex would be zero)."""
    if sample.apex == sample.onset:
        raise DatasetError(
            f"{where}: the facial motion estimated from frames {sample.onset}..{sample.offset} "
            f"peaks at the onset (frame {sample.onset}), so the flow from onset to apex would be "
            "zero; give the apex (--apex)"
        )


class Predictor:
    """A trained model, loaded once, that classifies clips (frame folders or videos), on
    ``device`` (``cpu``, ``cuda``, or ``auto``: CUDA when available).

    Raises :class:`msmmt.model.checkpoint.CheckpointError` for a missing or corrupt
    checkpoint; :meth:`analyse` raises :class:`DatasetError` for a clip it cannot use
    (missing, no face, marks outside the clip).
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        self.model_dir = Path(model_dir)
        if self.model_dir.is_file():
            raise CheckpointError(
                f"{self.model_dir}: is a file; a checkpoint is a folder (written by msmmt train)"
            )
        device = str(select_device(device))  # "auto": CUDA when available
        model, self.config, self.extra = load_checkpoint(self.model_dir, map_location=device)
        self.model = model.eval()
        self.device = device
        self.class_names = _class_names(self.extra, self.config, self.model_dir)
        self.texture_is_apex = self.extra.get("texture") == "apex"
        """True for a model trained on apex crops (composite release) instead of dynamic images."""

    @property
    def cfg(self) -> Config:
        return self.config

    @property
    def patch_size(self) -> int:
        return self.model.patch_size[0]

    def analyse(
        self,
        clip: str | Path,
        onset: int | None = None,
        apex: int | None = None,
        offset: int | None = None,
    ) -> Analysis:
        """Preprocess ``clip`` as in training and run the model on it.

        Without ``apex``, the apex is estimated from the facial motion
        (:func:`msmmt.preprocess.clip.estimate_apex`); ``sample.extra["assumed"]`` says so.
        """
        clip = Path(clip)
        if not clip.exists():
            raise DatasetError(f"{clip}: no such clip (expected a folder of frames or a video file)")
        sample = read_clip(clip, onset=onset, apex=apex, offset=offset)
        _check_motion(sample, str(clip), estimate=apex is None)
        frames = load_frames(sample, sample.onset, sample.offset)
        return self.analyse_frames(sample, frames, str(clip), estimate=apex is None)

    def analyse_frames(
        self, sample: Sample, frames: np.ndarray, where: str, estimate: bool = False
    ) -> Analysis:
        """Run the model on a clip already decoded: ``frames`` (T, H, W, 3) uint8 RGB are
        ``sample``'s frames from its onset to its offset.

        Parameters
        ----------
        sample
            The clip's record (:func:`msmmt.data.readers.read_clip`), its marks resolved.
        frames
            Its frames from ``sample.onset`` to ``sample.offset``, both included.
        where
            Names the clip in errors (a path, or a video and its frames).
        estimate
            Replace ``sample.apex`` (provisional) by the peak of the facial motion.
        """
        _check_motion(sample, where, estimate)
        span = sample_key_frames(sample)
        marks = span.relative()
        images = process_clip(
            frames,
            marks.onset,
            None if estimate else marks.apex,
            self.config.preprocess,
            offset_idx=marks.offset,
            clip=where,
            estimate=estimate,
        )
        if "estimate" in images.info:
            numbers = list(sample.frame_numbers[span.onset : span.offset + 1])
            sample = _with_estimated_apex(sample, numbers, images.info["estimate"])
            _check_estimate(sample, where)
        return self._run(sample, images)

    def _run(self, sample: Sample, images: ClipImages) -> Analysis:
        """The model's output for the clip's images (the apex face as texture for an apex model)."""
        if self.texture_is_apex:
            images = dataclasses.replace(images, texture=images.face)
        size = self.config.model.img_size
        texture = to_tensor(images.texture, size)[None].to(self.device)
        motion = to_tensor(images.motion, size)[None].to(self.device)
        with torch.inference_mode():
            output = self.model(texture, motion)
        proba = output.probabilities()[0].float().cpu().numpy()
        return Analysis(sample, images, proba, self.class_names[int(proba.argmax())], output)
