"""Using a trained model on bad or awkward input: `msmmt predict`, `explain` and `spot` refuse
what cannot work in one line (before any work where they can), keep what they computed, and
read a long video once to classify its intervals. An untrained tiny checkpoint and one
synthetic clip (a frame folder and the same frames as a video) keep it fast."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import msmmt.inference.spot as spot_module
from msmmt.cli import app
from msmmt.config import SpotConfig, load_config
from msmmt.core.records import DatasetError
from msmmt.inference.explain import draw_patch_weights
from msmmt.inference.predict import Predictor
from msmmt.inference.spot import Interval, SpotResult, spot
from msmmt.model import build_model
from msmmt.model.checkpoint import CheckpointError, save_checkpoint

runner = CliRunner()

TINY = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.fusion_hidden=32"]
CLASSES = {"class_names": ["a", "b", "c"]}


def _write_video(path, frames, fps=30):
    """``frames`` (T, H, W, 3) RGB as an MJPG video."""
    size = (frames.shape[2], frames.shape[1])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def _write_folder(folder, frames):
    """``frames`` (T, H, W, 3) RGB as lossless img1.png, img2.png..."""
    folder.mkdir()
    for i, frame in enumerate(frames, 1):
        cv2.imwrite(str(folder / f"img{i}.png"), np.ascontiguousarray(frame[..., ::-1]))
    return folder


def _checkpoint(path, *overrides):
    cfg = load_config("demo", [*TINY, *overrides])
    return save_checkpoint(build_model(cfg.model), cfg, path, extra=CLASSES)


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    """A synthetic clip's frames (RGB), its apex position, the clip as a video, and an
    untrained tiny checkpoint."""
    from msmmt.core.keyframes import sample_key_frames
    from msmmt.data.readers import load_frames, read_dataset
    from msmmt.data.synthetic import generate

    root = tmp_path_factory.mktemp("audit")
    generate(root / "data", subjects=1, clips_per_subject=1, size=160, seed=0)
    clip = read_dataset("synthetic", root / "data")[0]
    frames = load_frames(clip)
    video = _write_video(root / "clip.avi", frames)
    return frames, sample_key_frames(clip).apex, video, _checkpoint(root / "model")


def _fake_spot(result):
    def fake(*args, **kwargs):
        fake.kwargs = kwargs
        return result

    return fake


def _no_spotting(*args, **kwargs):
    raise AssertionError("spotted before checking the options")


# --- predict --------------------------------------------------------------------------------


def test_the_global_device_reaches_the_predictor(face, monkeypatch):
    import torch

    _, _, video, model = face
    assert Predictor(model, device="auto").device == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = runner.invoke(app, ["--device", "cuda", "predict", str(model), str(video)])
    assert r.exit_code == 2
    assert r.output == "error: device: cuda was requested but no CUDA device is available\n"


def test_an_apex_estimated_on_the_onset_is_refused(face, tmp_path):
    # a flash on the second frame, then the first frame again: the motion peaks at the onset
    frames, apex, _, model = face
    flash = _write_folder(tmp_path / "flash", np.stack([frames[0], frames[apex], *[frames[0]] * 5]))
    result = runner.invoke(app, ["predict", str(model), str(flash)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {flash}: the facial motion estimated from frames 1..7")
    assert "peaks at the onset (frame 1)" in result.output and "--apex" in result.output
    with_apex = runner.invoke(app, ["predict", str(model), str(flash), "--apex", "2"])
    assert with_apex.exit_code == 0, with_apex.output


def test_a_two_frame_clip_needs_its_apex_given(face, tmp_path):
    frames, apex, _, model = face
    clip = _write_folder(tmp_path / "two", np.stack([frames[0], frames[apex]]))
    result = runner.invoke(app, ["predict", str(model), str(clip)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output == (
        f"error: {clip}: 2 frames from onset 1 to offset 2: too few to estimate the apex from "
        "the facial motion (at least 3); give the apex (--apex)\n"
    )
    given = runner.invoke(app, ["predict", str(model), str(clip), "--apex", "2", "--json"])
    assert given.exit_code == 0, given.output


def test_a_file_given_as_the_checkpoint_is_a_clear_error(face):
    _, _, video, model = face
    with pytest.raises(CheckpointError, match="is a file; a checkpoint is a folder"):
        Predictor(model / "config.json")
    result = runner.invoke(app, ["predict", str(model / "config.json"), str(video)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: not a usable checkpoint: {model / 'config.json'}: is a file; a checkpoint is "
        "a folder (written by msmmt train)\n"
    )


# --- explain --------------------------------------------------------------------------------


def test_the_figure_title_is_wrapped_within_the_figure(tmp_path):
    """A title longer than the figure is wide (the assumed marks) is wrapped, not cut off at
    both edges."""
    face = np.full((48, 48, 3), 128, dtype=np.uint8)
    title = "clip: negative (0.52)\nonset 1, apex 26, offset 47 (assumed: " + "words " * 60 + ")"
    path = draw_patch_weights(face, {}, {"motion@1": np.full((8, 8), 0.5)}, 6, 48, tmp_path / "f.png",
                              title=title, variant="post-norm")
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    ink = np.flatnonzero((grey < 128).any(axis=0))
    assert ink[0] > 3 and ink[-1] < grey.shape[1] - 4  # nothing touches the left or right edge


def test_explain_refuses_a_model_without_patch_weights_before_any_work(face, tmp_path, monkeypatch):
    _, _, video, _ = face
    model = _checkpoint(tmp_path / "none", "model.patch_weighting=none")

    def no_work(*args, **kwargs):
        raise AssertionError("analysed the clip first")

    monkeypatch.setattr(Predictor, "analyse", no_work)
    result = runner.invoke(app, ["explain", str(model), str(video), "-o", str(tmp_path / "f.png")])
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: {model}: model.patch_weighting is none: the model computes no patch weights\n"
    )


@pytest.mark.parametrize("out", ["file/fig.png", "file/figures/"])
def test_explain_refuses_an_out_under_a_file_before_any_work(tmp_path, out):
    # neither the checkpoint nor the clip exists: the --out error comes first
    (tmp_path / "file").write_text("x")
    target = f"{tmp_path}/{out}"
    result = runner.invoke(app, ["explain", str(tmp_path / "m"), str(tmp_path / "c"), "-o", target])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --out {target.rstrip('/')}: ")
    assert result.output.endswith(f"{tmp_path / 'file'} is a file, not a folder\n")


def test_explain_refuses_an_out_folder_it_cannot_write_into(tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)
    result = runner.invoke(
        app, ["explain", str(tmp_path / "m"), str(tmp_path / "c"), "-o", str(tmp_path / "f.png")]
    )
    assert result.exit_code == 2
    assert result.output == (
        f"error: --out {tmp_path / 'f.png'}: cannot write into {tmp_path} (permission denied)\n"
    )


def test_explain_that_cannot_write_its_figure_says_so_in_one_line(face, tmp_path, monkeypatch):
    _, _, video, model = face

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("msmmt.inference.explain.draw_patch_weights", unwritable)
    fig = tmp_path / "f.png"
    result = runner.invoke(app, ["explain", str(model), str(video), "-o", str(fig), "--apex", "20"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: cannot write {fig} (Permission denied); the prediction was ")


# --- spot: reading the video ------------------------------------------------------------------


def test_a_video_too_short_for_the_spotting_signal_is_refused(face, tmp_path):
    frames, _, _, _ = face
    short = _write_video(tmp_path / "short.avi", frames[:3])
    with pytest.raises(DatasetError, match=r"short\.avi: 3 frame\(s\) \(0\.10 s at 30 fps\): too short"):
        spot(short)
    result = runner.invoke(app, ["-q", "spot", str(short)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {short}: 3 frame(s)") and "at least 9 frames" in result.output


def test_a_frame_folder_of_mixed_sizes_is_refused(face, tmp_path):
    frames, _, _, _ = face
    folder = _write_folder(tmp_path / "mixed", frames[:12])
    big = cv2.resize(np.ascontiguousarray(frames[4][..., ::-1]), (320, 320))
    cv2.imwrite(str(folder / "img5.png"), big)
    with pytest.raises(DatasetError, match=r"frame .*img5\.png is 320x320, unlike .*img1\.png \(160x160\)"):
        spot(folder, fps=30)


def test_spot_shows_progress_and_its_signal_does_not_depend_on_the_chunks(face, capsys, monkeypatch):
    _, _, video, _ = face
    found = spot(video, progress=True)
    err = capsys.readouterr().err
    assert "spot: reading" in err and "spot: signal" in err
    assert found.frame_span == (0, found.frames - 1)
    monkeypatch.setattr(spot_module, "SIGNAL_CHUNK", 5)
    assert np.array_equal(spot(video).signal, found.signal)
    assert capsys.readouterr().err == ""


# --- spot: --truth, --out, --classify -------------------------------------------------------


def _video_stub(tmp_path):
    video = tmp_path / "video.avi"
    video.write_bytes(b"")
    return video


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind,onset,apex,offset\nmacro,1,2,3\n", "no micro-expression interval"),
        ("onset,offset\n260,250\n", "interval 260-250: the onset is after the offset"),
    ],
)
def test_a_truth_file_with_nothing_to_score_is_refused_before_spotting(tmp_path, monkeypatch, text, message):
    monkeypatch.setattr(spot_module, "spot", _no_spotting)
    truth = tmp_path / "truth.csv"
    truth.write_text(text)
    result = runner.invoke(app, ["spot", str(_video_stub(tmp_path)), "--truth", str(truth)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {truth}: {message}") and result.output.count("\n") == 1


def test_a_truth_of_another_video_is_refused_and_the_intervals_are_kept(tmp_path, monkeypatch):
    found = SpotResult([Interval(10, 12, 15, 30.0)], 30.0, 100, "hog", np.zeros(100), frame_span=(0, 99))
    monkeypatch.setattr(spot_module, "spot", _fake_spot(found))
    truth, out = tmp_path / "truth.csv", tmp_path / "out.csv"
    truth.write_text("onset,offset\n10,15\n5000,5010\n")
    result = runner.invoke(app, ["spot", str(_video_stub(tmp_path)), "--truth", str(truth), "-o", str(out)])
    assert result.exit_code == 2
    assert f"error: {truth}: 1 interval(s) outside the video's frames 0..99 (first: 5000-5010)" in (
        result.output
    )
    assert "F1" not in result.output
    assert out.read_text() == "onset,apex,offset,score\n10,12,15,30.00\n"


@pytest.mark.parametrize("which", ["video", "truth"])
def test_spot_refuses_an_out_that_would_overwrite_its_input(tmp_path, monkeypatch, which):
    monkeypatch.setattr(spot_module, "spot", _no_spotting)
    video = _video_stub(tmp_path)
    truth = tmp_path / "truth.csv"
    truth.write_text("onset,offset\n1,5\n")
    out = video if which == "video" else truth
    result = runner.invoke(app, ["spot", str(video), "--truth", str(truth), "-o", str(out)])
    assert result.exit_code == 2 and "give another name for the CSV" in result.output
    assert truth.read_text() == "onset,offset\n1,5\n" and video.read_bytes() == b""


def test_spot_refuses_an_out_under_a_file_before_spotting(tmp_path, monkeypatch):
    monkeypatch.setattr(spot_module, "spot", _no_spotting)
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out.csv"
    result = runner.invoke(app, ["spot", str(_video_stub(tmp_path)), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output == f"error: --out {out}: {tmp_path / 'file'} is a file, not a folder\n"


def test_spot_that_cannot_write_its_out_prints_the_intervals(tmp_path, monkeypatch):
    found = SpotResult([Interval(10, 12, 15, 30.0)], 30.0, 100, "hog", np.zeros(100))
    monkeypatch.setattr(spot_module, "spot", _fake_spot(found))

    def unwritable(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("msmmt.core.io.atomic_write_text", unwritable)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["spot", str(_video_stub(tmp_path)), "-o", str(out)])
    assert result.exit_code == 2
    assert result.stdout == "onset,apex,offset,score\n10,12,15,30.00\n"
    assert f"error: --out {out}: cannot write it (No space left on device)" in result.stderr
    assert "Traceback" not in result.output


def test_spot_quiet_shows_no_progress(tmp_path, monkeypatch):
    fake = _fake_spot(SpotResult([], 30.0, 100, "hog", np.zeros(100)))
    monkeypatch.setattr(spot_module, "spot", fake)
    assert runner.invoke(app, ["-q", "spot", str(_video_stub(tmp_path))]).exit_code == 0
    assert fake.kwargs["progress"] is False
    assert runner.invoke(app, ["spot", str(_video_stub(tmp_path))]).exit_code == 0
    assert fake.kwargs["progress"] is True


def test_spot_checks_the_classify_checkpoint_before_spotting(tmp_path, monkeypatch):
    monkeypatch.setattr(spot_module, "spot", _no_spotting)
    model = _checkpoint(tmp_path / "model")
    (model / "model.safetensors").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["spot", str(_video_stub(tmp_path)), "--classify", str(model)])
    assert result.exit_code == 2
    assert result.output.startswith("error: not a usable checkpoint: ") and "model.safetensors" in result.output


INTERVALS = [Interval(2, 8, 14, 30.0), Interval(10, 16, 22, 25.0), Interval(20, 26, 44, 40.0)]


def test_interval_frames_reads_each_interval_in_one_pass(face):
    frames, _, video, _ = face
    got = dict(spot_module.interval_frames(video, [*INTERVALS, Interval(40, 45, 500, 1.0)]))
    assert list(got) == INTERVALS  # in the order of their offsets; the one past the end is not
    for iv in INTERVALS:  # overlapping ones included
        decoded = frames[iv.onset : iv.offset + 1]
        assert got[iv].shape == decoded.shape
        assert np.abs(got[iv].astype(int) - decoded).mean() < 3  # MJPG


def test_classify_intervals_gives_what_predict_gives_and_goes_on_after_a_failure(face):
    _, _, video, model = face
    predictor = Predictor(model)
    past_end = Interval(40, 45, 500, 1.0)
    results = dict(spot_module.classify_intervals(predictor, video, [*INTERVALS, past_end]))
    for iv in INTERVALS:
        expected = predictor.analyse(video, iv.onset, iv.apex, iv.offset)
        assert np.allclose(results[iv].probabilities, expected.probabilities, atol=1e-6)
        assert results[iv].sample.apex == iv.apex and not results[iv].sample.extra
    assert isinstance(results[past_end], DatasetError)
    assert "ended before frame 500" in str(results[past_end])


def test_spot_classify_records_an_interval_it_cannot_classify_and_goes_on(face, monkeypatch):
    _, _, video, model = face
    found = SpotResult(INTERVALS[:2], 30.0, 47, "hog", np.zeros(47))
    monkeypatch.setattr(spot_module, "spot", _fake_spot(found))
    analyse = Predictor.analyse_frames

    def no_face_in_the_first(self, sample, frames, where, estimate=False):
        if sample.onset == INTERVALS[0].onset:
            raise DatasetError(f"{where}: no face found")
        return analyse(self, sample, frames, where, estimate)

    monkeypatch.setattr(Predictor, "analyse_frames", no_face_in_the_first)
    result = runner.invoke(app, ["-q", "spot", str(video), "--classify", str(model)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [(r["onset"], r["class"], r["probability"]) for r in rows][0] == ("2", "", "")
    assert rows[1]["class"] in CLASSES["class_names"] and float(rows[1]["probability"]) > 0.3
    assert f"warning: interval 2-14 not classified: {video} frames 2..14: no face found" in (
        result.stderr
    )


def test_spot_result_span_numbers_a_folder_by_its_files(face, tmp_path):
    frames, _, _, _ = face
    folder = _write_folder(tmp_path / "frames", frames[:12])
    found = spot(folder, SpotConfig(track_seconds=None), fps=30)
    assert found.frame_span == (1, 12) and found.frames == 12
