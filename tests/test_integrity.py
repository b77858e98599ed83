"""Data integrity (issue 11): every result traceable to the inputs and settings that made it,
no silent wrong result, no traceback. Each test holds one promise of docs/RELIABILITY.md."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import typing
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from eval_fakes import hashed_fit_predict, write_manifest_dataset
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import Config, ConfigError, PreprocessConfig, load_config
from msmmt.core.io import atomic_write_text
from msmmt.core.keyframes import sample_key_frames
from msmmt.core.records import DatasetError
from msmmt.data.readers import read_clip, read_dataset, read_for_training
from msmmt.data.synthetic import SHEET_NAME, generate
from msmmt.evaluation.runner import RunDirMismatchError, run_folds
from msmmt.preprocess import cache
from msmmt.preprocess.batch import preprocess_dataset

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src"
CFG = PreprocessConfig(face_size=64, image_size=48)
SETTINGS = [
    "--set", "preprocess.face_size=64", "--set", "preprocess.image_size=48",
    "--set", "model.img_size=48",
]
TINY = [
    "model.embed_dim=32",
    "model.depth=2",
    "model.num_heads=2",
    "model.fusion_hidden=32",
    "model.proj_dim=16",
    "train.epochs=1",
    "train.batch_size=4",
]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """2 synthetic subjects x 3 clips (160 px) and their cache made with CFG."""
    root = tmp_path_factory.mktemp("integrity")
    generate(root / "data", subjects=2, clips_per_subject=3, size=160, seed=0)
    summary = preprocess_dataset(
        read_dataset("synthetic", root / "data"), CFG, root / "cache", progress=False
    )
    assert summary.failed == 0
    return root


def _copy_data(synth: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth / "data", tmp_path / "data"))


# --- 1. the cache carries its settings; train/loso use them --------------------------------


def test_cache_records_its_settings_and_version(synth):
    meta = cache.read_metadata(synth / "cache")
    assert meta["preprocess"] == CFG and meta["msmmt_version"]
    raw = json.loads((synth / "cache" / "manifest.json").read_text())
    assert raw["preprocess"]["face_size"] == 64 and raw["cache_version"] == cache.CACHE_VERSION


def test_training_set_reads_the_cache_then_adopts_its_settings(synth, tmp_path, caplog):
    small = ["model.img_size=48"]
    cfg, samples = cache.training_set(load_config(None, small), synth / "cache")
    assert cfg.preprocess == CFG  # what a checkpoint trained from Python then records
    assert samples == read_for_training("precomputed", synth / "cache", cfg.data)
    with pytest.raises(ConfigError, match=r"preprocess\.magnify"):
        cache.training_set(load_config(None, ["preprocess.magnify=false", *small]), synth / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):  # bad data fails first, without a warning about metadata
        cache.training_set(Config(), tmp_path / "empty")
    assert "no cache metadata" not in caplog.text


def test_config_contradicting_the_cache_is_refused_and_defaults_adopt_it(synth):
    small = ["model.img_size=48"]  # a model that fits the cache's 48 px images
    adopted = cache.adopt_cache_settings(load_config(None, small), synth / "cache")
    assert adopted.preprocess == CFG  # the defaults (224 px) give way to the cache's
    same = cache.adopt_cache_settings(load_config(None, [*SETTINGS[1::2], *small]), synth / "cache")
    assert same.preprocess == CFG
    with pytest.raises(ConfigError, match=r"preprocess\.magnify \(config False, cache True\)"):
        cache.adopt_cache_settings(
            load_config(None, ["preprocess.magnify=false", *small]), synth / "cache"
        )
    # a manifest without metadata (made by hand or by an older msmmt): the config as it is
    plain = synth / "plain"
    plain.mkdir()
    write_manifest_dataset(plain, {"casme2/s1": 1})
    assert cache.adopt_cache_settings(Config(), plain) == Config()
    # an edited manifest no longer matches its metadata
    edited = Path(shutil.copytree(synth / "cache", synth / "edited"))
    with (edited / "manifest.csv").open("a") as fh:
        fh.write("\n")
    with pytest.raises(ConfigError, match="does not describe"):
        cache.read_metadata(edited)


def test_train_refuses_other_settings_and_records_the_caches(synth, tmp_path):
    demo = yaml.safe_load((SRC / "msmmt" / "configs" / "demo.yaml").read_text())
    del demo["preprocess"]  # the config says nothing about preprocessing: the cache decides
    config = tmp_path / "no-preprocess.yaml"
    config.write_text(yaml.safe_dump(demo))
    args = ["train", str(config), "--data", str(synth / "cache"), "--out", str(tmp_path / "m")]
    bad = runner.invoke(app, ["-q", "--set", "preprocess.magnify=false", *args])
    assert bad.exit_code == 2 and "preprocess.magnify" in bad.output, bad.output
    ok = runner.invoke(app, ["-q", *_sets(TINY), *args])
    assert ok.exit_code == 0, ok.output
    extra = json.loads((tmp_path / "m" / "extra.json").read_text())
    assert extra["preprocess"] == CFG.model_dump(mode="json")  # what predict will use


# --- 2, 3, 14.4: cache keys --------------------------------------------------------------


def test_every_preprocess_field_belongs_to_one_stage():
    """A new PreprocessConfig field must be given a stage in cache.FIELD_STAGE, else cache
    entries made without it would be reused."""
    assert set(cache.FIELD_STAGE) == set(PreprocessConfig.model_fields)


def _changed(name: str, value):
    ann = PreprocessConfig.model_fields[name].annotation
    if isinstance(value, bool):
        return not value
    if isinstance(value, list):  # e.g. the face cascade: one step fewer
        return value[:-1]
    if value is None:  # e.g. magnify_levels None (full height): a fixed height
        return 3
    if typing.get_origin(ann) is typing.Literal:
        return next(v for v in typing.get_args(ann) if v != value)
    return value + 1 if isinstance(value, int) else value * 1.1


@pytest.mark.parametrize("name", sorted(PreprocessConfig.model_fields))
def test_every_preprocess_field_changes_some_cache_entry(name, tmp_path):
    cfg = PreprocessConfig()
    other = cfg.model_copy(update={name: _changed(name, getattr(cfg, name))})
    a = cache.clip_entries(tmp_path, cfg, 1, 5, 9, 9, "x")
    b = cache.clip_entries(tmp_path, other, 1, 5, 9, 9, "x")
    assert a != b, f"preprocess.{name} does not reach the cache key"


def test_clips_with_the_same_safe_name_do_not_share_images(synth, tmp_path):
    a = cache.clip_folder(tmp_path, "casme2", "casme2/sub01", "EP 02")
    b = cache.clip_folder(tmp_path, "casme2", "casme2/sub01", "EP_02")
    assert a != b and a.name.startswith("EP_02-") and b.name.startswith("EP_02-")
    # end to end: two different clips whose names sanitise alike, with equal marks
    s0, s1 = read_dataset("synthetic", synth / "data")[:2]
    onset, offset = max(s0.onset, s1.onset), min(s0.offset, s1.offset)
    marks = {"onset": onset, "apex": (onset + offset) // 2, "offset": offset}
    pair = [
        dataclasses.replace(s0, clip="EP 02", **marks),
        dataclasses.replace(s1, clip="EP_02", **marks),
    ]
    preprocess_dataset(pair, CFG, tmp_path / "cache", progress=False)
    rows = pd.read_csv(tmp_path / "cache" / "manifest.csv")
    assert rows["texture_image"].nunique() == 2
    images = [cv2.imread(str(tmp_path / "cache" / p)) for p in rows["texture_image"]]
    assert not np.array_equal(*images)


def test_edited_frames_are_recomputed_not_skipped(synth, tmp_path):
    data = _copy_data(synth, tmp_path)
    cache_dir = Path(shutil.copytree(synth / "cache", tmp_path / "cache"))
    samples = read_dataset("synthetic", data)
    before = pd.read_csv(cache_dir / "manifest.csv")
    assert preprocess_dataset(samples, CFG, cache_dir, progress=False).skipped == 6
    # replace the apex frame of the first clip by the onset frame: no motion any more
    s = samples[0]
    marks = sample_key_frames(s)
    shutil.copy(s.frames[marks.onset], s.frames[marks.apex])
    summary = preprocess_dataset(samples, CFG, cache_dir, progress=False)
    assert (summary.done, summary.skipped) == (1, 5)
    after = pd.read_csv(cache_dir / "manifest.csv")
    assert after["motion_image"][0] != before["motion_image"][0]
    assert (after["motion_image"][1:] == before["motion_image"][1:]).all()


# --- 4. a LOSO run is tied to its data ---------------------------------------------------


def test_loso_resume_on_other_data_is_refused(tmp_path):
    from msmmt.data.readers import read_precomputed

    subjects = {"casme2/s1": 3, "casme2/s2": 3, "casme2/s3": 3}
    (tmp_path / "a").mkdir()
    write_manifest_dataset(tmp_path / "a", subjects)
    other = Path(shutil.copytree(tmp_path / "a", tmp_path / "b"))
    cfg = Config()
    run = tmp_path / "run"
    run_folds(
        cfg,
        read_precomputed(tmp_path / "a"),
        run,
        hashed_fit_predict,
        folds=["casme2_s1"],
        progress=False,
    )
    # same images: resuming is fine
    run_folds(
        cfg, read_precomputed(other), run, hashed_fit_predict, folds=["casme2_s2"], progress=False
    )
    image = cv2.imread(str(other / "tex_4.png"))
    cv2.imwrite(str(other / "tex_4.png"), 255 - image)  # same keys and labels, other data
    with pytest.raises(RunDirMismatchError, match=r"other input data.*casme2/s2/clip1"):
        run_folds(cfg, read_precomputed(other), run, hashed_fit_predict, progress=False)


# --- 5. workers die with their parent -------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_preprocess_workers_die_with_a_killed_parent(synth, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "msmmt", "--threads", "1", "-q", *SETTINGS]
    cmd += [
        "preprocess",
        "synthetic",
        str(synth / "data"),
        "--out",
        str(tmp_path / "c"),
        "--workers",
        "2",
    ]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(_children(parent.pid)) < 3 and time.monotonic() < deadline:  # 2 workers + tracker
            time.sleep(0.2)
        children = _children(parent.pid)
        assert len(children) >= 2, "the pool did not start"
        time.sleep(1)  # the workers are busy with clips
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while any(_running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [c for c in children if _running(c)]
        assert not alive, f"processes {alive} outlived their killed parent"
    finally:  # leave no process behind (orphans no longer list as children)
        parent.kill()
        for pid in children:
            if _running(pid) and b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


# --- 6. permissions -------------------------------------------------------------------------


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_and_folders_honour_the_umask(synth, tmp_path, umask_002):
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == 0o664
    generate(tmp_path / "data", subjects=1, clips_per_subject=1, size=160, seed=0)
    clip = next(p for p in (tmp_path / "data" / "sub01").iterdir() if p.is_dir())
    assert _mode(clip) == 0o775 and _mode(next(clip.iterdir())) == 0o664
    preprocess_dataset(
        read_dataset("synthetic", tmp_path / "data"), CFG, tmp_path / "c", progress=False
    )
    written = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert len(written) >= 7 and {_mode(p) for p in written} == {0o664}
    from msmmt.model import build_model
    from msmmt.model.checkpoint import save_checkpoint

    cfg = load_config("demo", TINY)
    model = save_checkpoint(build_model(cfg.model), cfg, tmp_path / "model", extra={})
    assert {p.name: _mode(p) for p in model.iterdir()} == {
        "model.safetensors": 0o664, "config.json": 0o664, "extra.json": 0o664
    }


# --- 7. clear errors, not tracebacks ---------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    from msmmt.model import build_model
    from msmmt.model.checkpoint import save_checkpoint

    cfg = load_config("demo", TINY)
    return save_checkpoint(build_model(cfg.model), cfg, tmp_path / "model", extra={})


@pytest.mark.parametrize(
    "names", [["a", "b"], ["a", "b", "c", "d"], {"0": "a", "1": "b", "2": "c"}]
)
def test_predict_with_bad_class_names_is_a_clear_error(checkpoint, tmp_path, names):
    (checkpoint / "extra.json").write_text(json.dumps({"class_names": names}))
    (tmp_path / "clip").mkdir()
    result = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "clip")])
    assert result.exit_code == 2, result.output
    assert "extra.json: class_names" in result.output and "list of 3 names" in result.output


def test_a_checkpoint_of_another_version_or_shape_is_refused_in_one_line(checkpoint, tmp_path):
    (tmp_path / "clip").mkdir()
    config = json.loads((checkpoint / "config.json").read_text())
    wrong = {**config, "model": {**config["model"], "newer_option": 1, "depth": "deep"}}
    (checkpoint / "config.json").write_text(json.dumps(wrong))
    r = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "clip")])
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1, r.output
    assert f"{checkpoint / 'config.json'}: model." in r.output and "(and 1 more)" in r.output
    wider = {**config, "model": {**config["model"], "embed_dim": 2 * config["model"]["embed_dim"]}}
    (checkpoint / "config.json").write_text(json.dumps(wider))
    r = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "clip")])
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1, r.output
    assert "weights do not match" in r.output and "in the file" in r.output and "more)" in r.output


def test_checkpoint_extra_that_is_not_an_object_is_refused(checkpoint, tmp_path):
    (checkpoint / "extra.json").write_text("[1, 2]")
    (tmp_path / "clip").mkdir()
    result = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "clip")])
    assert result.exit_code == 2 and "expected a JSON object" in result.output


def test_unreadable_pretrained_weights_are_a_clear_error(synth, tmp_path):
    garbage = tmp_path / "weights.safetensors"
    garbage.write_bytes(b"\x00not safetensors")
    for path, message in [
        (tmp_path / "none.pth", "No such file"),
        (tmp_path, "Is a directory"),
        (garbage, "cannot read ViT weights"),
    ]:
        result = runner.invoke(
            app,
            [
                "-q",
                *_sets(TINY),
                *SETTINGS,
                "--set",
                f"model.pretrained={path}",
                "train",
                "demo",
                "--data",
                str(synth / "cache"),
                "--out",
                str(tmp_path / "m"),
            ],
        )
        assert result.exit_code == 2, (path, result.output, result.exception)
        assert message in result.output and "Traceback" not in result.output


def test_set_override_errors():
    with pytest.raises(ConfigError, match=r"train\.epochs does not take true/false"):
        load_config(None, ["train.epochs=true"])
    with pytest.raises(ConfigError, match="the key .*is empty"):
        load_config(None, ["=3"])
    assert load_config(None, ["train.amp=false", "model.pretrained=null"]).train.amp is False


def _frames(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        cv2.imwrite(str(folder / f"img{i}.jpg"), np.full((32, 32, 3), i, np.uint8))
    return folder


def test_an_onset_past_the_end_blames_the_onset(checkpoint, tmp_path):
    clip = _frames(tmp_path / "clip", 63)
    result = runner.invoke(app, ["predict", str(checkpoint), str(clip), "--onset", "100"])
    assert result.exit_code == 2
    assert "onset frame 100 is not among the clip's frames 1..63" in result.output
    assert "offset" not in result.output


# --- 9. degenerate input -------------------------------------------------------------------


def test_a_single_frame_is_refused(checkpoint, synth, tmp_path):
    clip = tmp_path / "one"
    clip.mkdir()
    shutil.copy(read_dataset("synthetic", synth / "data")[0].frames[0], clip / "img1.jpg")
    result = runner.invoke(app, ["predict", str(checkpoint), str(clip)])
    assert result.exit_code == 2 and "1 frame(s) from onset 1 to offset 1" in result.output


def test_a_truncated_video_is_reported(tmp_path, caplog):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    for i in range(40):
        writer.write(np.full((64, 64, 3), 5 * i, np.uint8))
    writer.release()
    assert "warning" not in read_clip(path).extra
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    sample = read_clip(path)
    assert len(sample.frame_numbers) < 40
    assert f"only {len(sample.frame_numbers)} of the 40 frames" in sample.extra["warning"]
    assert "truncated" in caplog.text


# --- 8. one bad row does not stop a run -------------------------------------------------------


def test_bad_rows_are_all_reported_and_the_others_are_preprocessed(synth, tmp_path):
    data = _copy_data(synth, tmp_path)
    sheet = pd.read_excel(data / SHEET_NAME)
    sheet.loc[1, "Estimated Emotion"] = "bogus"
    shutil.rmtree(data / "sub02" / sheet.loc[4, "Filename"])
    sheet.to_excel(data / SHEET_NAME, index=False)
    with pytest.raises(DatasetError) as err:
        read_dataset("synthetic", data)
    assert len(err.value.problems) == 2 and len(err.value.samples) == 4
    assert "row 3: unknown emotion 'bogus'" in str(err.value) and "row 6: frame folder" in str(
        err.value
    )
    assert isinstance(err.value, DatasetError)
    cache_dir = tmp_path / "cache"
    shutil.copytree(synth / "cache", cache_dir)
    result = runner.invoke(
        app, ["-q", *SETTINGS, "preprocess", "synthetic", str(data), "--out", str(cache_dir)]
    )
    assert result.exit_code == 1, result.output
    failures = pd.read_csv(cache_dir / "failures.csv")
    assert list(failures["stage"]) == ["read", "read"]
    assert failures["error"].str.contains(f"{SHEET_NAME} row [36]:").all()
    assert len(pd.read_csv(cache_dir / "manifest.csv")) == 4


# --- 11. temporaries of killed writers -------------------------------------------------------


def test_temporaries_left_by_a_killed_writer_are_removed_on_the_next_run(synth, tmp_path):
    cache_dir = Path(shutil.copytree(synth / "cache", tmp_path / "cache"))
    folder = next((cache_dir / "clips").rglob("faces-*.npz")).parent
    script = (
        "import os, signal, sys\n"
        "from msmmt.core.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run(
        [sys.executable, "-c", script, str(folder / "faces-x.npz")], env=env, check=False
    )
    left = [p for p in folder.iterdir() if p.name.startswith(".")]
    assert len(left) == 1
    from msmmt.core.io import atomic_path

    with atomic_path(folder / "mine.txt") as live:  # a write in progress in a live process stays
        live.write_text("x")
        preprocess_dataset(
            read_dataset("synthetic", synth / "data"), CFG, cache_dir, progress=False
        )
        assert live.exists()
    assert not left[0].exists()


def test_every_bad_manifest_row_is_reported_at_once(tmp_path):
    from msmmt.data.readers import read_precomputed

    manifest = write_manifest_dataset(tmp_path, {"casme2/s1": 4})
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace("negative", "bogus")
    (tmp_path / "tex_2.png").unlink()
    (tmp_path / "flow_3.png").write_bytes(b"notapng")
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        read_precomputed(manifest)
    assert "row 2: unknown label 'bogus'" in str(err.value)
    assert "row 4: texture_image" in str(err.value)
    assert f"row 5: flow_image {tmp_path / 'flow_3.png'}: not a readable image" in str(err.value)
    assert len(err.value.samples) == 1
