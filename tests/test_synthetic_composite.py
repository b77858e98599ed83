"""The composite-like synthetic set: its plan's shape (no rendering), the mechanisms it adds to
the generator (action-unit variants, label noise, head drift, greyscale), and a tiny preset
rendered, read back with the composite reader, exported to the release form and read back."""

from __future__ import annotations

import collections
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import PreprocessConfig
from msmmt.core.environment import environment
from msmmt.data.readers import read_dataset
from msmmt.data.synthetic import (
    SynthSettings,
    clip_frames,
    draw_clip,
    expression_field,
    make_identity,
    render_clip,
)
from msmmt.data.synthetic_composite import generate_composite
from msmmt.data.synthetic_plan import PRESETS, PartPreset, SynthPreset, clip_plan, subject_sizes
from msmmt.ops.flow import tvl1_flow
from msmmt.preprocess.release import export_release

COMPOSITE = {  # MEGC2019 composite: (subjects, negative, positive, surprise) per part
    "smic": (16, 70, 51, 43),
    "casme2": (24, 88, 32, 25),
    "samm": (28, 92, 26, 15),
}


def test_composite_like_plan_has_the_composite_shape():
    preset = PRESETS["composite-like"]
    plan = clip_plan(preset, seed=0)
    assert len(plan) == 442
    assert collections.Counter(c.label for c in plan) == {"negative": 250, "positive": 109, "surprise": 83}
    for dataset, (subjects, *counts) in COMPOSITE.items():
        mine = [c for c in plan if c.dataset == dataset]
        assert len({c.subject for c in mine}) == subjects
        labels = collections.Counter(c.label for c in mine)
        assert [labels["negative"], labels["positive"], labels["surprise"]] == counts
    sizes = subject_sizes(preset, seed=0)
    every = [n for part in sizes.values() for n in part]
    assert len(every) == 68 and sum(every) == 442
    assert min(every) == 1 and max(every) == 39 and np.median(every) == 4
    per_subject = collections.Counter((c.dataset, c.subject) for c in plan)
    assert sorted(per_subject.values()) == sorted(every)
    # Seeded: the same plan again, another seed another one.
    assert clip_plan(preset, seed=0) == plan
    assert subject_sizes(preset, seed=1) != sizes
    # The parts differ as the source datasets do.
    parts = {p.dataset: p for p in preset.parts}
    assert parts["samm"].settings.grey and not parts["casme2"].settings.grey
    assert parts["smic"].size < parts["casme2"].size
    assert parts["smic"].settings.noise_std[0] > parts["casme2"].settings.noise_std[0]
    assert parts["smic"].settings.motion_frames[1] <= parts["casme2"].settings.motion_frames[0]


def test_impossible_subject_sizes_are_an_error():
    part = PartPreset("casme2", 4, {"negative": 4}, 160)
    with pytest.raises(ValueError, match="no subject sizes"):
        subject_sizes(SynthPreset("x", (part,), max_clips=1, median_clips=2), attempts=5)


def test_action_unit_variants_and_label_noise():
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[48:68] = (60, 60), (100, 60), (80, 110)
    lm[48], lm[54] = (65, 110), (95, 110)
    both = expression_field(lm, "positive", 160, "12")
    one = expression_field(lm, "positive", 160, "R12")
    # AU 12 alone is the positive prototype; R12 moves one lip corner only.
    np.testing.assert_allclose(both, expression_field(lm, "positive", 160), atol=1e-6)
    moving = [np.linalg.norm(one[110, x]) for x in (65, 95)]
    # The still corner sees only the tail of the other's bump: exp(-30^2 / (2 (0.3 * 40)^2)) = 0.044.
    assert max(moving) == pytest.approx(1.0, abs=0.01) and min(moving) == pytest.approx(0.044, abs=0.002)
    with pytest.raises(ValueError, match="unknown action unit"):
        expression_field(lm, "positive", 160, "12+99")

    varied = SynthSettings(varied=True)
    specs = [draw_clip(np.random.default_rng(i), 1, "c", "negative", varied) for i in range(60)]
    assert len({s.motion_units for s in specs}) >= 6 and {s.shown for s in specs} == {"negative"}
    noisy = SynthSettings(label_noise=1.0)
    shown = {draw_clip(np.random.default_rng(i), 1, "c", "surprise", noisy).shown for i in range(20)}
    assert shown == {"negative", "positive"}


def test_head_drift_and_greyscale():
    """No expression, a 1.2 px head drift: TV-L1 sees the face move 1.2 px first -> last frame."""
    st = SynthSettings(head_px=(1.2, 1.2), jitter_px=0.0, flicker=0.0, noise_std=(0.0, 0.0), grey=True)
    identity = make_identity(np.random.default_rng(3), 192, st)
    still = np.zeros((192, 192, 2), np.float32)
    frames = render_clip(identity, still, np.zeros(5), np.random.default_rng(1), st)
    assert np.array_equal(frames[..., 0], frames[..., 2])
    flow = tvl1_flow(frames[0], frames[-1])
    lm = identity.landmarks
    x0, y0 = lm.min(0).astype(int)
    x1, y1 = lm.max(0).astype(int)
    median = np.median(flow[y0:y1, x0:x1].reshape(-1, 2), axis=0)
    assert np.linalg.norm(median) == pytest.approx(1.2, abs=0.15)
    clean = render_clip(identity, still, np.zeros(5), np.random.default_rng(1), st, clean=True)
    assert np.abs(clean[0].astype(int) - clean[-1].astype(int)).max() == 0


def _tiny() -> SynthPreset:
    base = PRESETS["composite-like"]
    counts = {"smic": {"negative": 2, "positive": 1, "surprise": 1}, "casme2": {"negative": 1, "positive": 1, "surprise": 1}}
    counts["samm"] = counts["casme2"]
    parts = tuple(
        replace(p, subjects=2, counts=counts[p.dataset], settings=replace(p.settings, motion_frames=(10, 12)))
        for p in base.parts
    )
    return replace(base, name="tiny", parts=parts, max_clips=3, median_clips=1.5)


def test_tiny_preset_renders_reads_back_and_exports_the_release_form(tmp_path):
    preset = _tiny()
    out = tmp_path / "set"
    generate_composite(out, preset, seed=0)
    samples = read_dataset("composite", out)
    plan = clip_plan(preset, seed=0)
    assert len(samples) == len(plan) == 10
    assert collections.Counter(s.dataset for s in samples) == {"smic": 4, "casme2": 3, "samm": 3}
    assert collections.Counter(s.label for s in samples) == collections.Counter(c.label for c in plan)
    assert len({s.subject for s in samples}) == 6
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["preset"] == "tiny" and len(meta["clips"]) == 10
    assert meta["environment"] == environment()
    samm = cv2.imread(str(next(s for s in samples if s.dataset == "samm").frames[0]))
    assert np.array_equal(samm[..., 0], samm[..., 1])
    smic = [s for s in samples if s.dataset == "smic"]
    assert all(s.apex_estimated and s.onset == s.frame_numbers[0] for s in smic)

    cfg = PreprocessConfig(face_size=64, magnify=False, image_size=28)
    export_release(samples, tmp_path / "release", tmp_path / "cache", cfg, apex_size=48)
    back = read_dataset("composite-release", tmp_path / "release")
    assert [(s.subject, s.clip, s.label) for s in back] == [(s.subject, s.clip, s.label) for s in samples]
    assert cv2.imread(str(back[0].motion_image)).shape == (28, 28, 3)
    assert cv2.imread(str(back[0].texture_image)).shape == (48, 48, 3)

    # A rerun replaces the set, its release and cache folders included.
    (out / "cache").mkdir()
    generate_composite(out, preset, seed=1)
    assert not (out / "cache").exists()


def test_cli_composite_options(tmp_path):
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "x"), "--preset", "composite-like", "--subjects", "2"])
    assert result.exit_code == 2 and "--subjects: only for --preset demo" in result.output
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "x"), "--release"])
    assert result.exit_code == 2 and "only for --preset composite-like" in result.output


def test_blink_moves_the_eyelids_only():
    """A clip with no expression (peak 0) and a certain blink: the frames change at the eyes,
    nowhere else; the blink lies inside the clip."""
    st = SynthSettings(peak_px=(0.0, 0.0), blink=1.0, blink_px=(3.0, 3.0))
    spec = draw_clip(np.random.default_rng(0), 1, "c", "positive", st)
    assert spec.blink_px == 3.0 and 1 <= spec.blink_onset <= spec.n_frames - spec.blink_frames + 1
    identity = make_identity(np.random.default_rng(3), 192, st)
    frames = clip_frames(identity, spec, np.random.default_rng(0), st, clean=True).astype(float)
    peak = spec.blink_onset - 1 + spec.blink_frames // 2
    change = np.abs(frames[peak] - frames[0]).mean(-1)
    lm = identity.landmarks
    eye = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    yy, xx = np.mgrid[:192, :192]
    near = np.zeros((192, 192), bool)
    for centre in (lm[36:42].mean(0), lm[42:48].mean(0)):
        near |= (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < (0.5 * eye) ** 2
    assert change[near].max() > 20 and change[~near].max() < 3
    assert np.abs(frames[-1] - frames[0]).max() <= 1


@pytest.mark.slow
def test_cli_writes_the_composite_like_set(tmp_path):
    """The full preset (a few minutes): 442 clips of 68 subjects read back as the composite."""
    out = tmp_path / "set"
    result = CliRunner().invoke(app, ["synth", str(out), "--preset", "composite-like", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "wrote 442 clips (68 subjects, seed 0)" in result.output
    samples = read_dataset("composite", out)
    assert collections.Counter(s.label for s in samples) == {"negative": 250, "positive": 109, "surprise": 83}
    assert collections.Counter(s.dataset for s in samples) == {"smic": 164, "casme2": 145, "samm": 133}
