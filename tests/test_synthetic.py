"""Synthetic clips (``msmmt.data.synthetic``, ``msmmt synth``): layout, sheet, determinism,
the requested motion measured back with TV-L1 flow, identities and dlib detection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.core.environment import environment
from msmmt.core.labels import map_label
from msmmt.data.synthetic import (
    COLUMNS,
    SynthSettings,
    expression_field,
    generate,
    make_identity,
    render_clip,
    temporal_profile,
)
from msmmt.ops.landmarks import detect_landmarks

SIZE = 192
EMOTIONS = {"happiness": "12", "disgust": "4+15", "repression": "4+15", "surprise": "1+2+26"}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("noisy")
    generate(out, subjects=2, clips_per_subject=3, seed=0, size=SIZE)
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(
        out, subjects=2, clips_per_subject=3, seed=0, size=SIZE, clean=True,
        settings=SynthSettings(peak_px=(2.0, 3.0)),
    )
    return out


def _sheet(root: Path) -> pd.DataFrame:
    return pd.read_excel(root / "CASME2-coding-synthetic.xlsx")


def _frame(root: Path, subject: int, clip: str, number: int, flags=cv2.IMREAD_GRAYSCALE):
    path = root / f"sub{subject:02d}" / clip / f"img{number}.jpg"
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


def _clip_files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.glob("sub*/*/*.jpg"))}


def test_layout_and_sheet(noisy):
    sheet = _sheet(noisy)
    assert tuple(sheet.columns) == COLUMNS
    folders = {p.relative_to(noisy).as_posix() for p in noisy.glob("sub*/*") if p.is_dir()}
    rows = {f"sub{s:02d}/{f}" for s, f in zip(sheet["Subject"], sheet["Filename"], strict=True)}
    assert len(sheet) == 6 and rows == folders
    for _, row in sheet.iterrows():
        folder = noisy / f"sub{row.Subject:02d}" / row.Filename
        numbers = sorted(int(re.fullmatch(r"img(\d+)\.jpg", p.name).group(1)) for p in folder.iterdir())
        assert numbers == list(range(1, len(numbers) + 1))
        onset, apex, offset = row.OnsetFrame, row.ApexFrame, row.OffsetFrame
        assert 1 <= onset < apex < offset <= numbers[-1]
        assert 20 <= offset - onset + 1 <= 60
        assert EMOTIONS[row["Estimated Emotion"]] == str(row["Action Units"])
        assert _frame(noisy, row.Subject, row.Filename, 1, cv2.IMREAD_COLOR).shape == (SIZE, SIZE, 3)
    # Three clips per subject: one of each composite class.
    for _, group in sheet.groupby("Subject"):
        classes = sorted(map_label("casme2", e, "composite") for e in group["Estimated Emotion"])
        assert classes == ["negative", "positive", "surprise"]
    assert json.loads((noisy / "synthetic.json").read_text())["environment"] == environment()


def test_same_seed_same_bytes_independent_of_set_size(noisy, tmp_path):
    small = tmp_path / "small"
    generate(small, subjects=1, clips_per_subject=2, seed=0, size=SIZE)
    files = _clip_files(small)
    reference = _clip_files(noisy)
    assert len(files) > 40
    assert all(reference[name] == data for name, data in files.items())
    pd.testing.assert_frame_equal(_sheet(small), _sheet(noisy).iloc[:2])

    other = tmp_path / "other"
    generate(other, subjects=1, clips_per_subject=1, seed=1, size=SIZE)
    assert _clip_files(other)[Path("sub01/EP01_01/img1.jpg")] != reference[Path("sub01/EP01_01/img1.jpg")]


def _face_frame(lm: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors ``up`` (mouth -> eyes) and ``outward`` (away from the midline) at landmark i."""
    eyes, mouth = lm[36:48].mean(0), lm[48:68].mean(0)
    up = (eyes - mouth) / np.linalg.norm(eyes - mouth)
    rel = lm[i] - (eyes + mouth) / 2
    side = rel - (rel @ up) * up
    return up, side / np.linalg.norm(side)


def _mean_flow(flow: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: flow.shape[0], : flow.shape[1]]
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    return flow[disc].mean(0)


def _tvl1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)


def test_render_moves_content_by_the_displacement():
    """A uniform field F = (1, 0) shifted by 0.7 px: the image content moves 0.7 px right."""
    identity = make_identity(np.random.default_rng(3), SIZE)
    field = np.zeros((SIZE, SIZE, 2), np.float32)
    field[..., 0] = 1.0
    frames = render_clip(identity, field, np.array([0.0, 0.7]), np.random.default_rng(0), clean=True)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    median = np.median(_tvl1(*grey)[20:-20, 20:-20].reshape(-1, 2), axis=0)
    assert median == pytest.approx([0.7, 0.0], abs=0.06)


def test_requested_motion_appears_where_it_should(clean):
    """TV-L1 flow onset -> apex on noise-free clips: direction and size at the moving
    landmarks, and (almost) nothing at the eyes (positive) or in the background."""
    meta = json.loads((clean / "synthetic.json").read_text())
    checked = set()
    for clip in meta["clips"]:
        sub, name, peak = clip["subject"], clip["clip"], clip["peak_px"]
        lm = np.array(meta["landmarks"][f"sub{sub:02d}"])
        eye = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
        flow = _tvl1(_frame(clean, sub, name, clip["onset"]), _frame(clean, sub, name, clip["apex"]))
        # (up, outward) components of the mean flow near each landmark.
        at = {}
        for i in (8, 19, 21, 22, 24, 48, 54):
            up, out = _face_frame(lm, i)
            v = _mean_flow(flow, lm[i], 0.08 * eye)
            at[i] = np.array([v @ up, v @ out])
        if clip["expression"] == "positive":
            requested = peak * np.array([0.8, 0.6])  # lip corners up and outward
            for i in (48, 54):
                cos = at[i] @ requested / (np.linalg.norm(at[i]) * peak)
                assert cos > np.cos(np.deg2rad(20)), (name, i, at[i], requested)
                assert 0.55 * peak < np.linalg.norm(at[i]) < 1.15 * peak, (name, i, at[i], peak)
            eyes = _mean_flow(flow, lm[36:48].mean(0), 0.5 * eye)
            assert np.linalg.norm(eyes) < 0.15 * peak
        elif clip["expression"] == "negative":
            for i in (48, 54):
                assert at[i][0] < -0.4 * peak
            for i in (21, 22):
                # Down and together; flow sees little of the motion along the brow (aperture).
                assert at[i][0] < -0.2 * peak and at[i][1] < -0.05 * peak
        else:
            for i in (19, 24):
                assert at[i][0] > 0.4 * peak
            assert at[8][0] < -0.4 * peak
        border = np.ones(flow.shape[:2], bool)
        border[12:-12, 12:-12] = False
        assert np.abs(flow[border]).mean() < 0.03
        checked.add(clip["expression"])
    assert checked == {"positive", "negative", "surprise"}


def test_noise_jitter_flicker_only_when_not_clean(noisy, clean):
    a = _frame(clean, 1, "EP01_01", 1).astype(float)
    b = _frame(noisy, 1, "EP01_01", 1).astype(float)
    assert 0.5 < np.std(a - b) < 8
    # Clean onset frames of two clips of one subject are the same neutral face.
    sheet = _sheet(clean)
    onset = dict(zip(sheet["Filename"][sheet["Subject"] == 1], sheet["OnsetFrame"], strict=False))
    onsets = [_frame(clean, 1, c, onset[c]).astype(float) for c in ("EP01_01", "EP02_01")]
    assert np.abs(onsets[0] - onsets[1]).max() == 0


def test_subjects_are_distinct_and_dlib_finds_them(noisy):
    meta = json.loads((noisy / "synthetic.json").read_text())
    first = [_frame(noisy, s, "EP01_01", 1, cv2.IMREAD_COLOR) for s in (1, 2)]
    assert np.abs(first[0].astype(float) - first[1].astype(float)).mean() > 10
    for s, image in zip((1, 2), first, strict=True):
        found = detect_landmarks(image[..., ::-1])
        assert found is not None, f"no face in sub{s:02d}"
        expected = np.array(meta["landmarks"][f"sub{s:02d}"])
        assert np.abs(found - expected).mean() < 3.0


def test_temporal_profile_and_field():
    s = temporal_profile(11, 2, 6, 10)
    assert s[:3].tolist() == [0, 0, 0] and s[6] == 1 and s[10] == 0
    assert s[4] == pytest.approx(0.5) and s[8] == pytest.approx(0.5)
    assert np.all(np.diff(s[2:7]) > 0) and np.all(np.diff(s[6:]) < 0)
    with pytest.raises(ValueError):
        temporal_profile(10, 5, 5, 8)

    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[48:68] = (60, 60), (100, 60), (80, 110)
    lm[48], lm[54] = (65, 110), (95, 110)
    field = expression_field(lm, "positive", 160)
    assert np.sqrt((field**2).sum(-1)).max() == pytest.approx(1.0)
    # Left corner (x = 65) moves up and left (outward), right corner up and right.
    assert field[110, 65, 1] < 0 and field[110, 65, 0] < 0
    assert field[110, 95, 1] < 0 and field[110, 95, 0] > 0
    assert np.abs(field[:20, :20]).max() < 1e-6


def test_bad_arguments_and_foreign_folder(tmp_path):
    with pytest.raises(ValueError, match="size"):
        generate(tmp_path / "a", size=100)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(tmp_path / "b", subjects=1, clips_per_subject=1, size=160)


def test_cli_writes_the_set(tmp_path):
    out = tmp_path / "set"
    result = CliRunner().invoke(
        app, ["synth", str(out), "--subjects", "2", "--clips-per-subject", "3", "--size", "160"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 6 clips" in result.output
    assert len(_sheet(out)) == 6
    assert len([p for p in out.glob("sub*/EP*") if p.is_dir()]) == 6

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "busy"), "--subjects", "1"])
    assert result.exit_code == 2 and "not empty" in result.output


def test_rerun_replaces_a_previous_set(tmp_path):
    generate(tmp_path, subjects=2, clips_per_subject=1, seed=0, size=160)
    generate(tmp_path, subjects=1, clips_per_subject=2, seed=1, size=160)
    folders = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("sub*/*"))
    assert folders == ["sub01/EP01_01", "sub01/EP02_01"]
    assert list(_sheet(tmp_path)["Filename"]) == ["EP01_01", "EP02_01"]
    assert not list(tmp_path.glob("**/.*"))  # no temporary files left behind


def test_a_run_killed_half_way_is_replaced_by_the_next_without_leftovers(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "set"
    # generate() killed while writing its third frame image: the first clip is done,
    # the second half-written in a hidden temporary folder, no sheet yet
    script = (
        "import itertools, os, signal, sys, cv2\n"
        "from msmmt.data.synthetic import generate\n"
        "encode, calls = cv2.imencode, itertools.count()\n"
        "def dying(*a, **k):\n"
        "    if next(calls) == N:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return encode(*a, **k)\n"
        "cv2.imencode = dying\n"
        f"generate(sys.argv[1], subjects=1, clips_per_subject=2, seed=0, size={SIZE})\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    generate(tmp_path / "probe", subjects=1, clips_per_subject=1, seed=0, size=SIZE)
    first = len(list((tmp_path / "probe" / "sub01").rglob("*.jpg")))  # frames of clip 1
    run = subprocess.run(
        [sys.executable, "-c", script.replace("N:", f"{first + 2}:"), str(out)],
        env=env, check=False,
    )
    assert run.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (out / "sub01").iterdir())
    assert "EP01_01" in left and any(n.startswith(".EP02_01.tmp-") for n in left), left
    generate(out, subjects=1, clips_per_subject=2, seed=0, size=SIZE)  # not refused
    assert sorted(p.name for p in (out / "sub01").iterdir()) == ["EP01_01", "EP02_01"]
