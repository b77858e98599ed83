"""Render a preset's clip plan in the composite layout (``msmmt synth --preset composite-like``).

Layout written by :func:`generate_composite` under ``OUT`` (what ``--dataset composite``
reads, :mod:`msmmt.data.readers.composite`)::

    CASME2/subNN/EPnn_01/imgK.jpg           + CASME2/CASME2-coding-synthetic.xlsx
    SAMM/NNN/NNN_n_1/NNN_KKKKK.jpg          + SAMM/SAMM_Micro_FACS_Codes_synthetic.xlsx
    SMIC/HS/sN/micro/<class>/sN_ne_nn/imageKKKKKK.jpg   (no sheet: apex read as the middle frame)
    synthetic.json                          preset, settings, per-clip parameters, landmarks
    release/, cache/                        the release form, if asked for (``msmmt synth --release``)

Each subject is an identity drawn with its part's settings; every clip draws from its own
generator seeded by (seed, part, subject, clip), so the set does not depend on ``workers``.
CASME II emotions are disgust / repression for negative clips, SAMM's anger / contempt /
disgust / fear / sadness in the composite's proportions (57 / 12 / 9 / 8 / 6).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from msmmt.core.environment import environment
from msmmt.core.io import atomic_path, atomic_write_json
from msmmt.data.synthetic import (
    META_NAME,
    Identity,
    SynthSettings,
    claim_folder,
    clip_frames,
    draw_clip,
    make_identity,
    render_clip,
    write_clip,
)
from msmmt.data.synthetic_plan import PartPreset, PlannedClip, SynthPreset, clip_plan
from msmmt.ops.landmarks import detect_landmarks

__all__ = ["FOLDERS", "RELEASE_FOLDER", "SHEETS", "clip_location", "detectable_identity", "generate_composite"]

FOLDERS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC"}
RELEASE_FOLDER = "release"
"""Where ``msmmt synth --release`` writes the release form (its preprocessing cache: ``cache``);
both are removed with the set when it is replaced."""
SHEETS = {
    "casme2": "CASME2-coding-synthetic.xlsx",
    "samm": "SAMM_Micro_FACS_Codes_synthetic.xlsx",
}
_SHEET_COLUMNS = {
    "casme2": ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"),
    "samm": ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units", "Estimated Emotion"),
}
_NEGATIVE = {
    "casme2": (("disgust", "repression"), (1, 1)),
    "samm": (("anger", "contempt", "disgust", "fear", "sadness"), (57, 12, 9, 8, 6)),
}
_SMIC_TAG = {"negative": "ne", "positive": "po", "surprise": "sur"}


def clip_location(clip: PlannedClip, number: int) -> tuple[str, str, Path, str]:
    """(subject folder, clip name, clip folder relative to OUT, frame-name pattern) of ``clip``;
    ``number`` counts the subject's clips of the same class (1-based; SMIC names use it)."""
    s, i = clip.subject, clip.index + 1
    if clip.dataset == "casme2":
        sub, name = f"sub{s:02d}", f"EP{i:02d}_01"
        return sub, name, Path("CASME2", sub, name), "img{}.jpg"
    if clip.dataset == "samm":
        sub = f"{s:03d}"
        name = f"{sub}_{i}_1"
        return sub, name, Path("SAMM", sub, name), sub + "_{:05d}.jpg"
    if clip.dataset == "smic":
        sub = f"s{s}"
        name = f"{sub}_{_SMIC_TAG[clip.label]}_{number:02d}"
        return sub, name, Path("SMIC", "HS", sub, "micro", clip.label, name), "image{:06d}.jpg"
    raise ValueError(f"unknown part {clip.dataset!r}; expected one of {', '.join(FOLDERS)}")


def _emotion(rng: np.random.Generator, dataset: str, label: str) -> str:
    if dataset == "smic":
        return label
    if label == "positive":
        return "happiness"
    if label == "surprise":
        return "surprise"
    names, weights = _NEGATIVE[dataset]
    return str(rng.choice(names, p=np.array(weights) / sum(weights)))


def _found(image: np.ndarray, identity: Identity) -> bool:
    """dlib finds the face in ``image``, its landmarks within 3% of the frame of the generator's."""
    found = detect_landmarks(image)
    return found is not None and np.abs(found - identity.landmarks).mean() < 0.03 * identity.size


def detectable_identity(key: list[int], size: int, settings: SynthSettings, attempts: int = 20) -> Identity:
    """The first identity drawn with seeds ``[*key, k]`` (k = 0, 1, ...) whose face dlib finds in
    three still frames at the part's highest sensor noise: strong pose, squeeze, lighting and
    noise draws can hide a face from dlib, and a real data set keeps only usable clips."""
    still = np.zeros((size, size, 2), np.float32)
    noisy = replace(settings, noise_std=(settings.noise_std[1],) * 2, head_px=(0.0, 0.0), head_deg=0.0)
    for k in range(attempts):
        identity = make_identity(np.random.default_rng([*key, k]), size, settings)
        frames = render_clip(identity, still, np.zeros(3), np.random.default_rng(k), noisy)
        if all(_found(frame, identity) for frame in frames):
            return identity
    raise RuntimeError(f"no identity that dlib detects in {attempts} draws of {key}; lower the pose and warp ranges")


def _render_subject(
    out_dir: Path, part: PartPreset, part_index: int, clips: list[PlannedClip], seed: int
) -> tuple[list[dict], list[float]]:
    """Render and write one subject's clips; their parameters and the subject's landmarks."""
    st = part.settings
    s = clips[0].subject
    identity = detectable_identity([seed, 100 + part_index, s, 0], part.size, st)
    fields: dict = {}
    seen: dict[str, int] = {}
    rows = []
    for clip in clips:
        seen[clip.label] = seen.get(clip.label, 0) + 1
        sub, name, folder, pattern = clip_location(clip, seen[clip.label])
        rng = np.random.default_rng([seed, 100 + part_index, s, 2, clip.index])
        spec = draw_clip(rng, s, name, clip.label, st)
        emotion = _emotion(np.random.default_rng([seed, 100 + part_index, s, 3, clip.index]), clip.dataset, clip.label)
        spec = replace(spec, emotion=emotion)
        frames = clip_frames(identity, spec, rng, st, fields=fields)
        write_clip(frames, out_dir / folder, st.jpeg_quality, pattern)
        rows.append({**asdict(spec), "dataset": clip.dataset, "subject_folder": sub, "folder": folder.as_posix()})
    return rows, np.round(identity.landmarks, 3).tolist()


def _write_sheets(out_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    for dataset, name in SHEETS.items():
        mine = [r for r in rows if r["dataset"] == dataset]
        if not mine:
            continue
        table = [
            (r["subject"], r["clip"], r["onset"], r["apex"], r["offset"], r["action_units"], r["emotion"])
            for r in mine
        ]
        with atomic_path(out_dir / FOLDERS[dataset] / name) as tmp:
            pd.DataFrame(table, columns=list(_SHEET_COLUMNS[dataset])).to_excel(tmp, index=False, engine="openpyxl")


def _subjects(preset: SynthPreset, seed: int) -> list[tuple[int, list[PlannedClip]]]:
    """(part index, clips) of every subject of the plan."""
    groups: dict[tuple[str, int], list[PlannedClip]] = {}
    for clip in clip_plan(preset, seed):
        groups.setdefault((clip.dataset, clip.subject), []).append(clip)
    index = {p.dataset: i for i, p in enumerate(preset.parts)}
    return [(index[d], clips) for (d, _), clips in groups.items()]


def generate_composite(
    out_dir: str | Path, preset: SynthPreset, seed: int = 0, workers: int = 1, progress: bool = False
) -> Path:
    """Write ``preset`` in the composite layout to ``out_dir`` (see the module docstring);
    return the path of its ``synthetic.json``. A previous synthetic set there is replaced,
    any other non-empty folder is refused (FileExistsError)."""
    from tqdm import tqdm

    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out_dir = Path(out_dir)
    claim_folder(out_dir, [FOLDERS[p.dataset] for p in preset.parts] + [RELEASE_FOLDER, "cache"])
    subjects = _subjects(preset, seed)
    bar = tqdm(total=sum(len(c) for _, c in subjects), desc="synth", unit="clip", disable=not progress)
    args = [(out_dir, preset.parts[p], p, clips, seed) for p, clips in subjects]
    results = []
    if workers <= 1:
        for a in args:
            results.append(_render_subject(*a))
            bar.update(len(a[3]))
    else:
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn")) as pool:
            for a, result in zip(args, pool.map(_render_subject, *zip(*args, strict=True)), strict=True):
                results.append(result)
                bar.update(len(a[3]))
    bar.close()
    rows = [r for clips, _ in results for r in clips]
    _write_sheets(out_dir, rows)
    meta = {
        "generator": "msmmt synth",
        "preset": preset.name,
        "seed": seed,
        "parts": [asdict(p) for p in preset.parts],
        "folders": [FOLDERS[p.dataset] for p in preset.parts] + [RELEASE_FOLDER, "cache"],
        "clips": rows,
        "landmarks": {
            f"{clips[0].dataset}/{r[0]['subject_folder']}": lm
            for (_, clips), (r, lm) in zip(subjects, results, strict=True)
        },
        "environment": environment(),
    }
    return atomic_write_json(out_dir / META_NAME, meta)
