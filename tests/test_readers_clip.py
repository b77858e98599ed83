"""read_clip (frame folder or video), load_frames, the dispatcher and the shared helpers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fixtures_datasets import frame_value, write_frames, write_image, write_video

from msmmt.core.keyframes import middle_frame
from msmmt.core.records import DatasetError
from msmmt.data.readers import DATASETS, load_frames, read_clip, read_dataset
from msmmt.data.readers._frames import numbered_frames
from msmmt.data.readers._sheet import read_table

VIDEO_VALUES = [0, 40, 80, 120, 160]


def means(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(axis=1)


def test_clip_folder_without_marks_assumes_and_says_so(tmp_path):
    write_frames(tmp_path / "clip", range(8, 13), "frame_{n}.png")
    s = read_clip(tmp_path / "clip")
    assert s.frame_numbers == (8, 9, 10, 11, 12)
    assert [p.name for p in s.frames[1:3]] == ["frame_9.png", "frame_10.png"]
    assert (s.onset, s.apex, s.offset, s.apex_estimated) == (8, 10, 12, True)
    assumed = s.extra["assumed"]
    assert "onset = first frame (8)" in assumed and "offset = last frame (12)" in assumed
    assert "apex" in assumed and "(10)" in assumed
    assert s.dataset == "clip" and s.clip == "clip" and s.video is None
    frames = load_frames(s)
    assert frames.shape == (5, 8, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(means(frames), [frame_value(n) for n in range(8, 13)])


def test_clip_folder_with_marks_assumes_nothing(tmp_path):
    write_frames(tmp_path / "c", range(1, 7), "img{n}.jpg")
    s = read_clip(tmp_path / "c", onset=2, apex=3, offset=5)
    assert (s.onset, s.apex, s.offset, s.apex_estimated) == (2, 3, 5, False)
    assert "assumed" not in s.extra
    only_apex = read_clip(tmp_path / "c", apex=5)
    assert (only_apex.onset, only_apex.apex, only_apex.offset) == (1, 5, 6)
    assert "apex" not in only_apex.extra["assumed"] and not only_apex.apex_estimated


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_clip_video(tmp_path, name, fourcc):
    path = write_video(tmp_path / name, VIDEO_VALUES, fourcc)
    s = read_clip(path)
    assert s.video == path and s.frames == () and s.clip == "clip"
    assert s.frame_numbers == (0, 1, 2, 3, 4)
    assert (s.onset, s.apex, s.offset) == (0, 2, 4)
    frames = load_frames(s)
    assert frames.shape == (5, 16, 16, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(means(frames), VIDEO_VALUES, atol=8)  # lossy codecs
    part = load_frames(s, 1, 3)
    np.testing.assert_allclose(means(part), VIDEO_VALUES[1:4], atol=8)
    explicit = read_clip(path, onset=1, apex=3, offset=4)
    assert (explicit.onset, explicit.apex, explicit.offset, explicit.apex_estimated) == (
        1,
        3,
        4,
        False,
    )


def test_load_frames_is_rgb_and_replicates_grey(tmp_path):
    write_image(tmp_path / "c" / "1.png", (255, 0, 0))  # BGR blue
    write_image(tmp_path / "c" / "2.png", (0, 0, 255))  # BGR red
    write_image(tmp_path / "c" / "3.png", 77, grey=True)
    frames = load_frames(read_clip(tmp_path / "c"))
    np.testing.assert_array_equal(frames[0, 0, 0], [0, 0, 255])
    np.testing.assert_array_equal(frames[1, 0, 0], [255, 0, 0])
    np.testing.assert_array_equal(frames[2, 0, 0], [77, 77, 77])


def test_load_frames_range(tmp_path):
    write_frames(tmp_path / "c", range(1, 11), "img{n}.png")
    s = read_clip(tmp_path / "c")
    np.testing.assert_array_equal(means(load_frames(s, 9, 10)), [frame_value(9), frame_value(10)])
    np.testing.assert_array_equal(means(load_frames(s, last=2)), [frame_value(1), frame_value(2)])
    with pytest.raises(DatasetError, match="no frame numbered 20..30"):
        load_frames(s, 20, 30)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"apex": 9}, "apex frame 9 is outside onset..offset"),
        ({"onset": 0}, "onset frame 0 is not among the clip's frames 1..4"),
        ({"onset": 3, "offset": 2}, "onset frame 3 is after offset frame 2"),
    ],
)
def test_clip_marks_errors_name_the_folder(tmp_path, kwargs, expected):
    write_frames(tmp_path / "c", range(1, 5))
    with pytest.raises(DatasetError, match=expected) as err:
        read_clip(tmp_path / "c", **kwargs)
    assert str(tmp_path / "c") in str(err.value)


def test_clip_path_errors(tmp_path):
    with pytest.raises(DatasetError, match="clip .*nothing does not exist"):
        read_clip(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="neither a folder of frames nor a video"):
        read_clip(tmp_path / "notes.txt")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DatasetError, match="broken.mp4"):
        read_clip(tmp_path / "broken.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no numbered image files"):
        read_clip(tmp_path / "empty")


def test_load_frames_errors_name_the_file(tmp_path):
    write_frames(tmp_path / "c", range(1, 5))
    s = read_clip(tmp_path / "c")
    (tmp_path / "c" / "img3.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match=r"cannot decode frame .*img3\.jpg"):
        load_frames(s)
    (tmp_path / "c" / "img3.jpg").unlink()
    with pytest.raises(DatasetError, match=r"cannot read frame .*img3\.jpg"):
        load_frames(s)
    write_image(tmp_path / "c" / "img3.jpg", 5, size=16)
    with pytest.raises(DatasetError, match=r"frame .*img3\.jpg is 16x16, unlike .* \(8x8\)"):
        load_frames(s)
    # a video shorter than its sample says
    video = read_clip(write_video(tmp_path / "v.avi", VIDEO_VALUES, "MJPG"))
    longer = dataclasses.replace(video, frame_numbers=tuple(range(8)))
    with pytest.raises(DatasetError, match=r"video .*v\.avi ended after 5 frames"):
        load_frames(longer)


def test_numbered_frames_rejects_two_files_with_one_number(tmp_path):
    write_frames(tmp_path, [1, 2], "img{n}.jpg")
    write_frames(tmp_path, [2], "reg_img{n}.jpg")
    (tmp_path / "._img3.jpg").write_bytes(b"mac fork")  # ignored
    (tmp_path / "Thumbs.db").write_bytes(b"x")  # ignored
    with pytest.raises(DatasetError, match="img2.jpg and reg_img2.jpg|reg_img2.jpg and img2.jpg"):
        numbered_frames(tmp_path)
    (tmp_path / "reg_img2.jpg").unlink()
    assert numbered_frames(tmp_path)[1] == (1, 2)


def test_middle_frame_ties_and_gaps():
    assert middle_frame((1, 2, 3, 4), 1, 4) == 2  # 2.5: 2 and 3 tie, the lower wins
    assert middle_frame((1, 2, 3, 4, 5), 1, 5) == 3
    assert middle_frame((10, 11, 20, 30), 10, 30) == 20
    assert middle_frame((10, 19, 21, 30), 10, 30) == 19


def test_read_table_finds_header_and_keeps_row_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("title line\n\nOnset Frame,subject ,APEX_frame\n5,a,/\n,,\n7,b,-1\n8,c,x\n")
    rows = read_table(path, {"on": "OnsetFrame", "sub": "Subject", "ap": "Apex Frame"})
    assert [(r.number, r.text("sub")) for r in rows] == [(4, "a"), (6, "b"), (7, "c")]
    assert rows[0].frame("on", "onset") == 5
    assert rows[0].frame("ap", "apex") is None and rows[1].frame("ap", "apex") is None
    with pytest.raises(DatasetError, match=r"t\.csv row 7: apex 'x' is not a frame number"):
        rows[2].frame("ap", "apex")


def test_read_dataset_rejects_unknown_names_and_bad_annotations(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'casme3'"):
        read_dataset("casme3", tmp_path)
    with pytest.raises(ValueError, match="no annotation file"):
        read_dataset("smic", tmp_path, tmp_path / "x.xlsx")
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset("samm", tmp_path / "absent")
    assert set(DATASETS) == {
        "casme2", "samm", "smic", "composite", "precomputed", "composite-release", "synthetic",
    }  # fmt: skip


def test_offset_past_the_last_frame_is_clamped_and_reported(tmp_path):
    write_frames(tmp_path / "clip", range(1, 7), "img{n}.jpg")
    s = read_clip(tmp_path / "clip", onset=2, apex=4, offset=40)
    assert (s.onset, s.apex, s.offset) == (2, 4, 6)
    assert "offset 40 is past the last frame; used the last frame (6)" in s.extra["assumed"]
