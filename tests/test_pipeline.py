"""The clip pipeline, the cache keys and the dataset runner (resume, failures, manifest, CLI)."""

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from typer.testing import CliRunner

import msmmt.preprocess.batch as batch
from msmmt.config import PreprocessConfig
from msmmt.core.environment import environment
from msmmt.core.images import read_rgb
from msmmt.core.keyframes import sample_key_frames
from msmmt.core.records import DatasetError, Sample
from msmmt.data.readers import read_dataset
from msmmt.ops.face import align_faces
from msmmt.ops.scaling import resize_square
from msmmt.preprocess import cache
from msmmt.preprocess.batch import input_fingerprint, preprocess_dataset
from msmmt.preprocess.clip import process_clip

CFG = PreprocessConfig(face_size=64, image_size=32)
MOUTH = (104 * 160 / 220, 118 * 160 / 220)  # astronaut's mouth in the 160 px crop


def _face_clip(
    n: int = 8, apex: int = 4, seed: int = 0, peak: float = 1.5, profile: np.ndarray | None = None
) -> np.ndarray:
    """(n, 160, 160, 3) frames of the astronaut's face with a mouth bump rising to ``apex``
    (or following ``profile``, one value in [0, 1] per frame)."""
    face = cv2.resize(data.astronaut()[30:250, 120:340], (160, 160), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-4, 4)
    face = cv2.warpAffine(face, cv2.getRotationMatrix2D((80, 80), angle, 1.0), (160, 160))
    y, x = np.mgrid[0:160, 0:160].astype(np.float32)
    bump = np.exp(-((x - MOUTH[0]) ** 2 + (y - MOUTH[1]) ** 2) / (2 * 8.0**2))
    if profile is None:
        profile = np.minimum(np.arange(n) / apex, 1.0)
    frames = []
    for s in profile:
        shift = (peak * s * bump).astype(np.float32)  # mouth region moves up
        frames.append(
            cv2.remap(face, x, y + shift, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        )
    return np.stack(frames)


def _write_clip(folder: Path, frames: np.ndarray) -> tuple[Path, ...]:
    folder.mkdir(parents=True)
    paths = []
    for i, frame in enumerate(frames, start=1):
        path = folder / f"img{i}.jpg"
        cv2.imwrite(str(path), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
    return tuple(paths)


def _sample(root: Path, subject: str, clip: str, frames: np.ndarray) -> Sample:
    paths = _write_clip(root / subject / clip, frames)
    n = len(paths)
    return Sample(
        dataset="casme2",
        subject=f"casme2/{subject}",
        clip=clip,
        label="happiness",
        frames=paths,
        frame_numbers=tuple(range(1, n + 1)),
        onset=1,
        apex=5,
        offset=n,
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    root = tmp_path_factory.mktemp("clips")
    grey = np.random.default_rng(9).normal(128, 3, (6, 120, 120, 3)).clip(0, 255).astype(np.uint8)
    return [
        _sample(root, "sub01", "EP01", _face_clip(seed=1)),
        _sample(root, "sub01", "EP02", grey),
        _sample(root, "sub02", "EP01", _face_clip(seed=2)),
    ]


def _files(cache_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (cache_dir / "clips").rglob("*") if p.is_file()}


def test_process_clip_images_and_where_the_motion_is():
    frames = _face_clip()
    images = process_clip(frames, 0, 4, CFG, clip="sub01/EP01")
    for image in (images.texture, images.motion, images.face):
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    aligned = align_faces(frames, CFG)
    np.testing.assert_array_equal(images.face, resize_square(aligned.frames[4], 32))
    info = images.info
    assert (info["onset"], info["apex"], info["offset"], info["detected_frame"]) == (0, 4, 7, 0)
    assert {"face", "magnify", "texture", "flow", "motion"} <= set(info["ms"])
    # The strain channel is strongest around the moving mouth (landmarks 48-67).
    mouth = np.array(info["landmarks"])[48:68]
    (x0, y0), (x1, y1) = mouth.min(0).astype(int) - 2, mouth.max(0).astype(int) + 3
    box = np.zeros((32, 32), bool)
    box[max(y0, 0) : y1, max(x0, 0) : x1] = True
    strain = images.motion[..., 2].astype(float)
    assert strain[box].mean() > 1.5 * strain[~box].mean()


def test_process_clip_rejects_bad_indices():
    frames = np.zeros((5, 40, 40, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"sub03/EP07.*apex frame 9 is outside onset..offset"):
        process_clip(frames, 0, 9, CFG, clip="sub03/EP07")
    with pytest.raises(DatasetError, match=r"apex frame 1 is outside onset..offset \(3..4\)"):
        process_clip(frames, 3, 1, CFG)


def test_each_image_is_keyed_by_the_settings_that_affect_it(tmp_path):
    def entries(cfg, apex=5):
        return cache.clip_entries(tmp_path, cfg, 1, apex, 9, 9)

    base = entries(CFG)
    changes = {
        "dynamic_image": (CFG.model_copy(update={"dynamic_image": "ranksvm"}), {"texture"}),
        "alpha": (CFG.model_copy(update={"magnify_alpha": 5.0}), {"texture", "motion"}),
        "mode": (CFG.model_copy(update={"magnify_mode": "iir"}), {"texture", "motion"}),
        "image_size": (CFG.model_copy(update={"image_size": 48}), {"texture", "motion", "face"}),
        "margin": (
            CFG.model_copy(update={"face_margin": 0.2}),
            {"faces", "texture", "motion", "face"},
        ),
    }
    for name, (cfg, expected) in changes.items():
        other = entries(cfg)
        changed = {
            f
            for f in ("faces", "texture", "motion", "face")
            if getattr(base, f) != getattr(other, f)
        }
        assert changed == expected, name
    apex = entries(CFG, apex=6)
    assert (apex.texture, apex.faces) == (base.texture, base.faces)
    assert apex.motion != base.motion and apex.face != base.face
    # Without magnification its parameters do not matter.
    off = CFG.model_copy(update={"magnify": False})
    assert entries(off).motion == entries(off.model_copy(update={"magnify_alpha": 3.0})).motion


def test_runner_records_failures_writes_manifest_and_resumes(samples, tmp_path):
    cache_dir = tmp_path / "cache"
    first = preprocess_dataset(samples, CFG, cache_dir, progress=False)
    assert (first.done, first.skipped, first.failed) == (2, 0, 1)

    failures = (cache_dir / "failures.csv").read_text().splitlines()
    assert failures[0] == "dataset,subject,clip,stage,error"
    assert len(failures) == 2 and failures[1].startswith("casme2,casme2/sub01,EP02,face,")
    assert "no face" in failures[1]

    manifest = (cache_dir / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "dataset,subject,clip,label,texture_image,motion_image,apex,apex_source"
    read = read_dataset("precomputed", cache_dir)
    assert [(s.subject, s.clip) for s in read] == [
        ("casme2/sub01", "EP01"),
        ("casme2/sub02", "EP01"),
    ]
    for s in read:
        assert read_rgb(s.texture_image).shape == (32, 32, 3)
        assert read_rgb(s.motion_image).shape == (32, 32, 3)

    assert cache.read_metadata(cache_dir)["environments"] == [environment()]

    before = _files(cache_dir)
    again = preprocess_dataset(samples, CFG, cache_dir, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 2, 1)
    assert _files(cache_dir) == before
    assert cache.read_metadata(cache_dir)["environments"] == [environment()]

    # Lose one entry: only it is recomputed, from the cached faces.
    lost = read[1].texture_image
    lost.unlink()
    third = preprocess_dataset(samples, CFG, cache_dir, progress=False)
    assert (third.done, third.skipped, third.failed) == (1, 1, 1)
    after = _files(cache_dir)
    assert lost in after and after[lost] != before[lost]
    assert {p: t for p, t in after.items() if p != lost} == {
        p: t for p, t in before.items() if p != lost
    }


def test_a_missing_apex_is_estimated_from_the_motion_and_cached_under_it(tmp_path):
    # 15 frames, the motion peaks at frame number 11 (the middle one is 8)
    profile = np.interp(np.arange(15), [0, 3, 10, 14], [0, 0, 1, 0.2])
    frames = _face_clip(15, profile=profile, peak=2.5)
    sample = _sample(tmp_path / "clips", "sub03", "EP09", frames)
    sample = dataclasses.replace(sample, apex=8, apex_estimated=True)
    first = preprocess_dataset([sample], CFG, tmp_path / "cache", progress=False)
    assert (first.done, first.failed) == (1, 0)
    folder = cache.clip_folder(tmp_path / "cache", "casme2", "casme2/sub03", "EP09")
    inputs = input_fingerprint(sample, sample_key_frames(sample))
    estimated = [
        a for a in range(1, 16)
        if cache.clip_entries(folder, CFG, 1, a, 15, 15, inputs).motion.is_file()
    ]
    assert len(estimated) == 1 and abs(estimated[0] - 11) <= 1, estimated
    annotated = dataclasses.replace(sample, subject="casme2/sub04", apex=10, apex_estimated=False)
    again = preprocess_dataset([sample, annotated], CFG, tmp_path / "cache", progress=False)
    assert (again.done, again.skipped) == (1, 1)
    # the manifest records the apex each clip's images were made with, and how it was found
    read = read_dataset("precomputed", tmp_path / "cache")
    assert [(s.apex, s.extra["apex_source"], s.apex_estimated) for s in read] == [
        (estimated[0], "motion", True),
        (10, "annotated", False),
    ]


def test_interrupted_run_resumes_without_redoing_finished_clips(samples, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    good = [samples[0], samples[2]]
    real = batch.modality_images
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "modality_images", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset(good, CFG, cache_dir, progress=False)
    monkeypatch.setattr(batch, "modality_images", real)

    done = _files(cache_dir)
    assert not [p for p in done if p.name.startswith(".")]  # no half-written file
    first_clip = cache.clip_folder(cache_dir, "casme2", "casme2/sub01", "EP01")
    assert sorted(p.name.split("-")[0] for p in done if p.parent == first_clip) == [
        "face",
        "faces",
        "motion",
        "texture",
    ]
    resumed = preprocess_dataset(good, CFG, cache_dir, progress=False)
    assert (resumed.done, resumed.skipped, resumed.failed) == (1, 1, 0)
    after = _files(cache_dir)
    assert all(after[p] == t for p, t in done.items())


def test_two_workers_give_the_same_images(samples, tmp_path):
    serial = preprocess_dataset(samples, CFG, tmp_path / "one", workers=1, progress=False)
    parallel = preprocess_dataset(samples, CFG, tmp_path / "two", workers=2, progress=False)
    assert (parallel.done, parallel.failed) == (serial.done, serial.failed) == (2, 1)
    for a, b in zip(
        read_dataset("precomputed", tmp_path / "one"),
        read_dataset("precomputed", tmp_path / "two"),
        strict=True,
    ):
        np.testing.assert_array_equal(
            read_rgb(a.texture_image), read_rgb(b.texture_image)
        )
        np.testing.assert_array_equal(
            read_rgb(a.motion_image), read_rgb(b.motion_image)
        )


def test_cli_preprocess(tmp_path):
    from msmmt.cli import app
    from msmmt.data.synthetic import generate

    root = tmp_path / "synth"
    generate(root, subjects=1, clips_per_subject=2, seed=0, size=160)
    runner = CliRunner()
    settings = ["--set", "preprocess.face_size=64", "--set", "preprocess.image_size=32"]
    settings += ["--set", "model.img_size=32"]  # the config checks image_size >= img_size
    ok = runner.invoke(
        app, [*settings, "preprocess", "synthetic", str(root), "--out", str(tmp_path / "c")]
    )
    assert ok.exit_code == 0, ok.output
    assert "2 done" in ok.output
    assert len((tmp_path / "c" / "manifest.csv").read_text().splitlines()) == 3

    # A clip without a face: recorded, the run goes on, exit status 1.
    clip = sorted(p for p in root.glob("sub01/*") if p.is_dir())[0]
    for frame in clip.glob("*.jpg"):
        cv2.imwrite(str(frame), np.full((160, 160, 3), 128, np.uint8))
    bad = runner.invoke(
        app, [*settings, "preprocess", "synthetic", str(root), "--out", str(tmp_path / "d")]
    )
    assert bad.exit_code == 1, bad.output
    assert "1 done" in bad.output and "1 failed" in bad.output

    missing = runner.invoke(
        app, ["preprocess", "casme2", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")]
    )
    assert missing.exit_code != 0
    assert "does not exist" in missing.output
