"""Presets of synthetic sets and their clip plan (who, which class, which folder), without rendering.

A :class:`SynthPreset` is a table of :class:`PartPreset` values, one per "source dataset":
how many subjects and clips of each class, the frame size and the
:class:`~msmmt.data.synthetic.SynthSettings` the part's clips are drawn with.
``composite-like`` (:data:`PRESETS`) has the shape of the MEGC2019 composite set (See et al.,
FG 2019): 68 subjects and 442 clips, SMIC-HS 164 clips of 16 subjects (70 negative /
51 positive / 43 surprise), CASME II 145 of 24 (88 / 32 / 25) and SAMM 133 of 28
(92 / 26 / 15), so 250 / 109 / 83 in all.

Subject sizes (:func:`subject_sizes`): each part's sizes are ``1 + m_i`` where the
``total - n`` extra clips are shared out in proportion to log-normal weights (largest
remainder rounding); the first subject of the part with the most clips per subject is
pinned to ``max_clips``. Draws are repeated (seeded) until every size lies in
``1..max_clips``, the smallest is 1 and the median of all subjects is ``median_clips``:
the composite's 1 to 39 clips per subject, median 4. Classes are dealt to a part's
clips in a seeded random order, so each part holds exactly its class counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msmmt.data.synthetic import CLASSES, SynthSettings

__all__ = ["PRESETS", "PartPreset", "PlannedClip", "SynthPreset", "clip_plan", "subject_sizes"]


@dataclass(frozen=True)
class PartPreset:
    """One source dataset of a preset."""

    dataset: str
    """``casme2``, ``samm`` or ``smic``: the layout the clips are written in and read from."""
    subjects: int
    counts: dict[str, int]
    """Clips of each composite class (negative, positive, surprise)."""
    size: int
    """Side of the square frames, pixels."""
    settings: SynthSettings = field(default_factory=SynthSettings)

    @property
    def clips(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class SynthPreset:
    name: str
    parts: tuple[PartPreset, ...]
    max_clips: int = 39
    median_clips: float = 4
    size_sigma: float = 1.0
    """Spread (log-normal sigma) of the subjects' shares of a part's clips."""


@dataclass(frozen=True)
class PlannedClip:
    """One clip of a plan: its part, subject (1-based within the part), index within the
    subject (0-based) and composite class."""

    dataset: str
    subject: int
    index: int
    label: str


_IDENTITY = {
    "rotation_deg": 10.0,  # in-plane head pose
    "scale": (0.85, 1.15),
    "shape_warp": 0.06,
    "gamma": (0.7, 1.4),
    "tone": (0.55, 1.2),
    "tint": 0.15,
    "illumination": 0.6,
    "aspect": (0.85, 1.0),
    "varied": True,
}

COMPOSITE_LIKE = SynthPreset(
    "composite-like",
    (
        PartPreset(
            "smic", 16, {"negative": 70, "positive": 51, "surprise": 43}, 160,
            SynthSettings(
                **_IDENTITY, peak_px=(0.15, 1.0), motion_frames=(12, 24), apex_fraction=(0.3, 0.7),
                lead_frames=(0, 0), jitter_px=0.25, noise_std=(3.0, 6.0), head_px=(0.0, 1.5),
                head_deg=1.0, blink=0.4, label_noise=0.10, jpeg_quality=90,
            ),
        ),
        PartPreset(
            "casme2", 24, {"negative": 88, "positive": 32, "surprise": 25}, 192,
            SynthSettings(
                **_IDENTITY, peak_px=(0.3, 1.8), motion_frames=(24, 40), jitter_px=0.15,
                noise_std=(1.0, 3.0), head_px=(0.0, 0.6), head_deg=0.3, blink=0.2,
            ),
        ),
        PartPreset(
            "samm", 28, {"negative": 92, "positive": 26, "surprise": 15}, 192,
            SynthSettings(
                **_IDENTITY, peak_px=(0.15, 1.0), motion_frames=(24, 40), jitter_px=0.15,
                noise_std=(2.5, 5.0), head_px=(0.0, 1.0), head_deg=0.5, blink=0.4,
                label_noise=0.18, grey=True,
            ),
        ),
    ),
)
"""Calibrated (``benchmarks/bench_composite_like.py``, ``docs/SYNTHETIC_BENCHMARK.md``) so that the
RBF SVM on the 28 px flow images scores near its real composite UF1 (0.718; SMIC 0.666, CASME II
0.862, SAMM 0.585)."""

PRESETS: dict[str, SynthPreset] = {COMPOSITE_LIKE.name: COMPOSITE_LIKE}
"""The presets written in the composite layout (``msmmt synth --preset``); the ``demo``
preset is :func:`msmmt.data.synthetic.generate`'s balanced CASME II-layout set."""


def _share(rng: np.random.Generator, total: int, n: int, sigma: float) -> np.ndarray:
    """``n`` sizes >= 1 summing to ``total``: 1 + the extra clips shared by log-normal weights."""
    weights = rng.lognormal(0.0, sigma, n)
    exact = (total - n) * weights / weights.sum()
    extra = np.floor(exact).astype(int)
    order = np.argsort(-(exact - extra), kind="stable")
    extra[order[: total - n - extra.sum()]] += 1
    return 1 + extra


def _draw_sizes(rng: np.random.Generator, preset: SynthPreset) -> list[np.ndarray]:
    means = [p.clips / p.subjects for p in preset.parts]
    pinned = int(np.argmax(means))
    sizes = []
    for i, part in enumerate(preset.parts):
        if i == pinned:
            rest = _share(rng, part.clips - preset.max_clips, part.subjects - 1, preset.size_sigma)
            sizes.append(np.concatenate([[preset.max_clips], rest]))
        else:
            sizes.append(_share(rng, part.clips, part.subjects, preset.size_sigma))
    return sizes


def subject_sizes(preset: SynthPreset, seed: int = 0, attempts: int = 10_000) -> dict[str, list[int]]:
    """Clips per subject of each part (see the module docstring); deterministic in ``seed``."""
    for k in range(attempts):
        sizes = _draw_sizes(np.random.default_rng([seed, 7, k]), preset)
        every = np.concatenate(sizes)
        if every.max() <= preset.max_clips and every.min() == 1 and np.median(every) == preset.median_clips:
            return {p.dataset: s.tolist() for p, s in zip(preset.parts, sizes, strict=True)}
    raise ValueError(
        f"preset {preset.name}: no subject sizes with median {preset.median_clips} and at most "
        f"{preset.max_clips} clips in {attempts} draws; check its subject and clip counts"
    )


def clip_plan(preset: SynthPreset, seed: int = 0) -> list[PlannedClip]:
    """Every clip of ``preset``: part by part, subject by subject, classes dealt at random."""
    sizes = subject_sizes(preset, seed)
    plan = []
    for p, part in enumerate(preset.parts):
        labels = [c for c in CLASSES for _ in range(part.counts.get(c, 0))]
        labels = list(np.random.default_rng([seed, 8, p]).permutation(labels))
        unknown = set(part.counts) - set(CLASSES)
        if unknown:
            raise ValueError(f"preset {preset.name}, part {part.dataset}: unknown classes {sorted(unknown)}")
        for s, n in enumerate(sizes[part.dataset], start=1):
            plan.extend(PlannedClip(part.dataset, s, i, str(labels.pop())) for i in range(n))
    return plan
