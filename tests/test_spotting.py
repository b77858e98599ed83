"""Spotting in long videos: the MEGC metric against a hand-computed case, the spotting
signal's response to a micro-expression against head motion, a macro-expression and a
blink, and ``msmmt spot`` end to end on a generated video (video file and frame folder,
with ``--truth`` and ``--classify``)."""

from __future__ import annotations

import csv
import re

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import SpotConfig, load_config
from msmmt.data.long_video import (
    Event,
    LongVideoSettings,
    drift_path,
    event_profile,
    read_truth,
    render_frames,
    write_long_video,
)
from msmmt.data.synthetic import make_identity
from msmmt.evaluation.spotting import SpotScore, interval_iou, match_intervals, score_spotting
from msmmt.inference.spot import spot
from msmmt.model import build_model
from msmmt.model.checkpoint import save_checkpoint
from msmmt.ops.face import face_landmarks
from msmmt.ops.spotting import crop_box, crop_face, face_regions, spotting_signal

runner = CliRunner()


def test_megc_scores_of_a_hand_computed_case():
    # IoU of [10, 20] and [12, 22]: 9 shared frames of 13 -> 0.692; [30, 40] and [33, 45]:
    # 8 of 16 -> exactly 0.5, a hit; [100, 110] and [200, 205] hit nothing; [150, 160] is missed.
    assert interval_iou((10, 20), (12, 22)) == pytest.approx(9 / 13)
    assert interval_iou((30, 40), (33, 45)) == pytest.approx(0.5)
    assert interval_iou((0, 4), (5, 9)) == 0.0
    spotted = [(10, 20), (30, 40), (100, 110), (200, 205)]
    truth = [(12, 22), (33, 45), (150, 160)]
    score = score_spotting(spotted, truth)
    assert (score.tp, score.fp, score.fn) == (2, 2, 1)
    assert score.precision == pytest.approx(2 / 4) and score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 * 2 / (4 + 3))
    # one ground-truth interval counts once; the better match takes it
    assert match_intervals([(10, 19), (10, 20)], [(10, 20)]) == [(1, 0, 1.0)]
    # videos pool by summing counts: F1 = 2 (2 + 1) / ((4 + 1) + (3 + 1))
    pooled = score + score_spotting([(0, 9)], [(0, 9)])
    assert pooled == SpotScore(3, 5, 4) and pooled.f1 == pytest.approx(6 / 9)


@pytest.fixture(scope="module")
def events_video():
    """A 30 fps video of 190 frames: a head move, a micro-expression, a blink, a macro-expression."""
    st = LongVideoSettings(fps=30, seconds=190 / 30, size=160)
    identity = make_identity(np.random.default_rng([4, 0]), st.size)
    events = [
        Event("head", 10, 25, 25, peak=5.0, angle=3.0, direction=(0.6, 0.8)),
        Event("micro", 45, 50, 56, expression="surprise", peak=1.5),
        Event("blink", 80, 83, 86, peak=1.0),
        Event("macro", 110, 130, 170, expression="positive", peak=6.0),
    ]
    frames = np.stack(list(render_frames(identity, events, 190, np.random.default_rng(0), st)))
    return frames, events


def test_spotting_signal_rises_on_the_micro_expression_only(events_video):
    frames, events = events_video
    found = face_landmarks(frames[0])
    x0, y0, side = crop_box(found.landmarks)
    # the box follows the head's shift, as msmmt spot's tracking does (so the eyes stay out
    # of the regions); the head move's 3-degree turn is left to the head-motion removal
    head = events[0]
    shift = event_profile(head, len(frames))[:, None] * head.peak * np.array(head.direction)
    crops = np.stack([crop_face(f, (x0 + dx, y0 + dy, side), 64) for f, (dx, dy) in zip(frames, shift, strict=True)])
    regions = face_regions((found.landmarks - [x0, y0]) * 64 / side, 64)
    signal = spotting_signal(crops, 4, regions)
    micro = signal[44:58].max()
    assert 44 <= signal.argmax() <= 57
    # measured: head move 0.26, macro-expression 0.35, blink 0.49 of the micro-expression's
    # peak in the environment of 2026-12-03, and 0.30 / 0.29 / 0.51 with the same code in that
    # of 2026-12-07 (docs/RELIABILITY.md, "Environment"), hence a bound of 0.6, not 0.5 (the
    # blink moves the eyelids themselves, which the flow spreads a little past the eye masks);
    # peaks are then picked on the robust z-score, where the blink stays under the threshold
    # (test_spot_cli_finds_the_micro_expressions_of_a_generated_video)
    for event in (events[0], events[2], events[3]):  # head move, blink, macro-expression
        assert signal[event.onset - 4 : event.offset + 5].max() < 0.6 * micro, event.kind


def _frames_folder(video, folder):
    folder.mkdir()
    capture = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        n += 1
        cv2.imwrite(str(folder / f"img{n + 99}.png"), image)  # lossless, numbered from 100
    capture.release()
    return n


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    video = tmp_path_factory.mktemp("spot") / "video.avi"
    result = runner.invoke(
        app, ["synth-video", str(video), "--fps", "30", "--seconds", "24", "--size", "160", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    return video


@pytest.fixture(scope="module")
def spotted(long_video):
    out = long_video.with_name("intervals.csv")
    truth = long_video.with_name(long_video.name + ".truth.csv")
    result = runner.invoke(
        app, ["--threads", "1", "spot", str(long_video), "--out", str(out), "--truth", str(truth)]
    )
    return result, out, truth


def test_spot_cli_finds_the_micro_expressions_of_a_generated_video(spotted):
    result, out, truth = spotted
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows and list(rows[0]) == ["onset", "apex", "offset", "score"]
    spotted = [(int(r["onset"]), int(r["offset"])) for r in rows]
    marks = read_truth(truth)
    assert len(marks) >= 2
    score = score_spotting(spotted, marks)
    assert score.f1 >= 0.75, (spotted, marks.tolist())
    for r in rows:
        assert int(r["onset"]) <= int(r["apex"]) <= int(r["offset"])
        assert (int(r["offset"]) - int(r["onset"]) + 1) / 30 <= SpotConfig().max_seconds
        assert float(r["score"]) >= SpotConfig().threshold
    printed = re.search(r"F1 (\d\.\d+)", result.output)
    assert printed and float(printed.group(1)) == pytest.approx(score.f1, abs=1e-3)


def test_spot_cli_reads_a_frame_folder_with_its_frame_numbers(long_video, spotted, tmp_path):
    folder = tmp_path / "frames"
    _frames_folder(long_video, folder)
    result = runner.invoke(app, ["spot", str(folder)])
    assert result.exit_code != 0 and "--fps" in result.output
    from_folder = runner.invoke(app, ["--quiet", "spot", str(folder), "--fps", "30"])
    assert from_folder.exit_code == 0, from_folder.output
    video_rows = list(csv.reader(spotted[1].read_text().splitlines()))[1:]
    folder_rows = list(csv.reader(from_folder.stdout.splitlines()))[1:]
    # the same intervals, numbered from the first file's number (100) instead of 0
    assert len(video_rows) == len(folder_rows) > 0
    for v, f in zip(video_rows, folder_rows, strict=True):
        assert [int(x) + 100 for x in v[:3]] == [int(x) for x in f[:3]]


def test_spot_cli_bad_input_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["spot", str(tmp_path / "missing.avi")])
    assert result.exit_code != 0 and "missing.avi" in result.output
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(3):
        cv2.imwrite(str(blank / f"img{i}.png"), np.full((120, 120, 3), 128, np.uint8))
    result = runner.invoke(app, ["spot", str(blank), "--fps", "30"])
    assert result.exit_code != 0 and "no face" in result.output and "Traceback" not in result.output


def test_spot_cli_checks_truth_and_out_before_spotting(tmp_path, monkeypatch):
    import msmmt.inference.spot

    def no_spotting(*args, **kwargs):
        raise AssertionError("spotted before checking the options")

    monkeypatch.setattr(msmmt.inference.spot, "spot", no_spotting)
    video = tmp_path / "video.avi"
    video.write_bytes(b"")
    missing = tmp_path / "nosuch.csv"
    result = runner.invoke(app, ["spot", str(video), "--truth", str(missing)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {missing}: ") and "No such file" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end\n1,2\n")
    result = runner.invoke(app, ["spot", str(video), "--truth", str(bad)])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {bad}: no column(s) offset, onset\n"
    result = runner.invoke(app, ["spot", str(video), "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: --out {tmp_path}: is a folder; give the name of the CSV file to write\n"
    )


@pytest.mark.slow
def test_spot_cli_classifies_each_interval_as_predict_does(long_video, tmp_path):
    from msmmt.inference.predict import Predictor

    cfg = load_config(
        "demo", ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.fusion_hidden=32"]
    )
    model = save_checkpoint(build_model(cfg.model), cfg, tmp_path / "model", extra={"class_names": ["a", "b", "c"]})
    result = runner.invoke(app, ["--quiet", "spot", str(long_video), "--classify", str(model)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert rows and list(rows[0]) == ["onset", "apex", "offset", "score", "class", "probability"]
    predictor = Predictor(model)
    first = rows[0]
    expected = predictor.analyse(long_video, int(first["onset"]), int(first["apex"]), int(first["offset"]))
    assert first["class"] == expected.label
    assert float(first["probability"]) == pytest.approx(expected.probabilities.max(), abs=1e-3)


def _drifting_video(path, seconds, drift, size=160, **rates):
    st = LongVideoSettings(fps=30, seconds=seconds, size=size, drift_px=drift, **rates)
    truth, _ = write_long_video(path, st, seed=1)
    return truth, drift_path(np.random.default_rng([1, 2]), int(round(seconds * 30)), drift)


def test_spot_box_follows_a_head_drifting_across_the_frame(tmp_path):
    quiet = {"micro_per_minute": 0, "macro_per_minute": 0, "head_per_minute": 0, "blinks_per_minute": 0}
    _, path = _drifting_video(tmp_path / "drift.avi", 4, 40.0, **quiet)
    found = spot(tmp_path / "drift.avi", SpotConfig())
    assert np.linalg.norm(path[-1]) == pytest.approx(40.0)
    assert np.abs(found.face_shift - path).max() < 1.0  # the face's true position, frame by frame
    fixed = spot(tmp_path / "drift.avi", SpotConfig(track_seconds=None))
    assert not fixed.face_shift.any()


def test_spot_finds_micro_expressions_on_a_drifting_head_where_a_fixed_box_does_not(tmp_path):
    # 40 s at 30 fps, the head drifting 50 px (half the face box) over the video
    truth, _ = _drifting_video(tmp_path / "drift.avi", 40, 50.0, size=192, micro_per_minute=12)
    marks = read_truth(truth)
    scores = {}
    for name, cfg in (("tracked", SpotConfig()), ("fixed", SpotConfig(track_seconds=None))):
        found = spot(tmp_path / "drift.avi", cfg)
        scores[name] = score_spotting([(iv.onset, iv.offset) for iv in found.intervals], marks)
    assert len(marks) >= 4
    assert scores["tracked"].f1 >= 0.75 > 0.25 > scores["fixed"].f1, scores
