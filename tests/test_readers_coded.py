"""CASME II, synthetic and SAMM readers on tiny folders and sheets in the official shapes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fixtures_datasets import (
    SAMM_PREAMBLE_ROWS,
    Coded,
    frame_value,
    make_casme2,
    make_samm,
    write_frames,
    write_xlsx,
)

from msmmt.core.keyframes import KeyFrames, sample_key_frames
from msmmt.core.records import DatasetError
from msmmt.data.readers import load_frames, read_dataset

# Sheet row of the i-th clip (0-based): CASME II's header is row 1.
CASME2_ROW = 2


def by_key(samples):
    return {s.key: s for s in samples}


# ----------------------------------------------------------------------------- CASME II


def test_casme2_reads_clips_with_frame_numbers_from_names(tmp_path):
    make_casme2(
        tmp_path,
        [
            Coded(1, "EP02_01f", 2, 10, 11, "Happiness", numbers=range(1, 13)),
            Coded("02", "EP03_02", 4, 5, 6, "others", numbers=range(3, 8)),
        ],
    )
    samples = read_dataset("casme2", tmp_path)
    assert [s.key for s in samples] == ["casme2/sub01/EP02_01f", "casme2/sub02/EP03_02"]
    a, b = samples
    assert a.dataset == "casme2" and a.subject == "casme2/sub01" and a.clip == "EP02_01f"
    assert a.label == "happiness" and b.label == "others"
    # img10 comes after img9, not after img1
    assert a.frame_numbers == tuple(range(1, 13))
    assert [p.name for p in a.frames[8:11]] == ["img9.jpg", "img10.jpg", "img11.jpg"]
    assert (a.onset, a.apex, a.offset, a.apex_estimated) == (2, 10, 11, False)
    assert sample_key_frames(a) == KeyFrames(1, 9, 10)  # positions of frames 2, 10, 11
    assert a.extra["action_units"] == "12"
    assert "assumed" not in a.extra
    assert b.frame_numbers == (3, 4, 5, 6, 7) and (b.onset, b.apex, b.offset) == (4, 5, 6)
    # the frames decode in number order
    video = load_frames(a)
    assert video.shape == (12, 8, 8, 3) and video.dtype == np.uint8
    means = video.reshape(12, -1).mean(axis=1)
    np.testing.assert_allclose(means, [frame_value(n) for n in range(1, 13)], atol=2)


def test_casme2_cropped_release_names_and_sheet_in_parent(tmp_path):
    data = tmp_path / "Cropped"
    make_casme2(
        data,
        [Coded(7, "EP01_11f", 1, 2, 3, "repression", numbers=range(1, 5))],
        sheet=tmp_path / "CASME2-coding-20190701.xlsx",
        frame_name="reg_img{n}.jpg",
    )
    (s,) = read_dataset("casme2", data)
    assert s.subject == "casme2/sub07"
    assert s.frames[0].name == "reg_img1.jpg" and s.frame_numbers == (1, 2, 3, 4)


def test_casme2_release_folder_one_level_above_the_subject_folders(tmp_path):
    # CASME2/CASME2-coding-*.xlsx beside CASME2/CASME2_RAW_selected/subXX
    make_casme2(
        tmp_path / "CASME2" / "CASME2_RAW_selected",
        [Coded(3, "EP01_01", 1, 2, 3, "surprise")],
        sheet=tmp_path / "CASME2" / "CASME2-coding-20140508.xlsx",
    )
    (s,) = read_dataset("casme2", tmp_path / "CASME2")
    assert s.key == "casme2/sub03/EP01_01" and s.label == "surprise"


def test_casme2_missing_apex_is_estimated_and_logged(tmp_path, caplog):
    make_casme2(
        tmp_path,
        [
            Coded(1, "EP01_01", 3, "/", 8, "disgust", numbers=range(1, 11)),
            Coded(1, "EP01_02", 2, None, 6, "disgust", numbers=range(1, 11)),
            Coded(2, "EP05_03", 1, 4, 9, "happiness", numbers=range(1, 11)),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="msmmt.data.readers"):
        a, b, c = read_dataset("casme2", tmp_path)
    # middle of 3..8 is 5.5 -> the lower of the two middle frames; of 2..6 it is 4
    assert (a.onset, a.apex, a.offset, a.apex_estimated) == (3, 5, 8, True)
    assert (b.apex, b.apex_estimated) == (4, True)
    assert (c.apex, c.apex_estimated) == (4, False)
    assert "apex" in a.extra["assumed"] and "5" in a.extra["assumed"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert "sub01/EP01_01" in warned[0] and f"row {CASME2_ROW}" in warned[0]
    assert "sub01/EP01_02" in warned[1] and f"row {CASME2_ROW + 1}" in warned[1]


def test_casme2_estimated_apex_skips_absent_frames(tmp_path):
    # frames 1..4 and 7..9 only: the middle of 2..8 (5) is absent; the nearest present
    # frame is 4 (|4 - 5| = 1 < |7 - 5| = 2)
    make_casme2(tmp_path, [Coded(1, "EP01_01", 2, "", 8, "others", numbers=[1, 2, 3, 4, 7, 8, 9])])
    (s,) = read_dataset("casme2", tmp_path)
    assert s.apex == 4


def test_synthetic_reads_the_casme2_layout_under_its_own_name(tmp_path):
    make_casme2(
        tmp_path,
        [Coded(1, "EP01_01", 1, 3, 5, "happiness"), Coded(2, "EP01_01", 1, 2, 6, "surprise")],
        sheet=tmp_path / "CASME2-coding-synthetic.xlsx",
    )
    samples = read_dataset("synthetic", tmp_path)
    assert [s.subject for s in samples] == ["synthetic/sub01", "synthetic/sub02"]
    assert {s.dataset for s in samples} == {"synthetic"}


@pytest.mark.parametrize(
    ("clip", "break_it", "expected"),
    [
        (Coded(1, "EP01_01", 1, 3, 5, "happiness"), "folder", "frame folder"),
        (Coded(1, "EP01_01", 0, 3, 5, "happiness"), None, "onset frame 0"),
        (Coded(1, "EP01_01", 1, 3, 5, "happiness"), "offsetframe", "offset frame 5 is not among"),
        (Coded(1, "EP01_01", 1, 6, 5, "happiness"), None, "outside onset..offset"),
        (Coded(1, "EP01_01", 4, 3, 5, "happiness"), None, "outside onset..offset"),
        (Coded(1, "EP01_01", 5, 3, 2, "happiness"), None, "onset frame 5 is after offset"),
        (Coded(1, "EP01_01", 1, 3, 5, "bliss"), None, "unknown emotion 'bliss'"),
        (Coded(1, "EP01_01", 1, "x3", 5, "happiness"), None, "'x3' is not a frame number"),
        (Coded("one", "EP01_01", 1, 3, 5, "happiness"), "nofolders", "Subject 'one'"),
        (Coded(1, "EP01_01", 1, 3, 5, "happiness"), "apexframe", "apex frame 3 is not among"),
    ],
)
def test_casme2_errors_name_the_sheet_and_row(tmp_path, clip, break_it, expected):
    good = Coded(1, "EP01_00", 1, 2, 3, "others")
    sheet = make_casme2(tmp_path, [good, clip], write_folders=break_it != "nofolders")
    if break_it == "nofolders":
        write_frames(tmp_path / "sub01" / "EP01_00", range(1, 7))
    if break_it == "folder":
        for p in (tmp_path / "sub01" / clip.clip).iterdir():
            p.unlink()
        (tmp_path / "sub01" / clip.clip).rmdir()
    if break_it == "apexframe":
        (tmp_path / "sub01" / clip.clip / "img3.jpg").unlink()
    if break_it == "offsetframe":
        (tmp_path / "sub01" / clip.clip / "img5.jpg").unlink()
    with pytest.raises(DatasetError) as err:
        read_dataset("casme2", tmp_path)
    message = str(err.value)
    assert expected in message
    assert str(sheet) in message and f"row {CASME2_ROW + 1}" in message


def test_casme2_offset_past_the_clip_is_clamped_with_a_warning(tmp_path, caplog):
    make_casme2(tmp_path, [Coded(1, "EP01_01", 1, 3, 99, "happiness")])
    (s,) = read_dataset("casme2", tmp_path)
    assert s.offset == s.frame_numbers[-1] < 99
    assert "offset 99 is past the last frame" in s.extra["assumed"]
    assert "offset 99" in caplog.text


def test_casme2_duplicate_clip_names_both_rows(tmp_path):
    clip = Coded(1, "EP01_01", 1, 3, 5, "happiness")
    sheet = make_casme2(tmp_path, [clip, Coded(2, "EP01_01", 1, 2, 3, "others"), clip])
    with pytest.raises(DatasetError, match="duplicate clip sub01/EP01_01") as err:
        read_dataset("casme2", tmp_path)
    assert f"{sheet} row {CASME2_ROW + 2}" in str(err.value)
    assert f"also on row {CASME2_ROW}" in str(err.value)


def test_casme2_missing_column_is_named(tmp_path):
    write_frames(tmp_path / "sub01" / "EP01_01", range(1, 4))
    sheet = write_xlsx(
        tmp_path / "CASME2-coding-bad.xlsx",
        [
            ("Subject", "Filename", "OnsetFrame", "OffsetFrame", "Estimated Emotion"),
            (1, "EP01_01", 1, 3, "others"),
        ],
    )
    with pytest.raises(DatasetError, match="missing Apex Frame") as err:
        read_dataset("casme2", tmp_path)
    assert str(sheet) in str(err.value)


def test_casme2_root_and_sheet_must_exist(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        read_dataset("casme2", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    write_frames(tmp_path / "data" / "sub01" / "EP01_01", range(1, 4))
    with pytest.raises(DatasetError, match="no CASME II coding file"):
        read_dataset("casme2", tmp_path / "data")
    with pytest.raises(DatasetError, match="annotation file .*absent.xlsx does not exist"):
        read_dataset("casme2", tmp_path / "data", tmp_path / "absent.xlsx")


def test_casme2_explicit_sheet_and_several_candidates(tmp_path):
    make_casme2(
        tmp_path,
        [Coded(1, "EP01_01", 1, 3, 5, "happiness")],
        sheet=tmp_path / "CASME2-coding-a.xlsx",
    )
    make_casme2(
        tmp_path, [Coded(1, "EP01_01", 1, 2, 5, "disgust")], sheet=tmp_path / "CASME2-coding-b.xlsx"
    )
    with pytest.raises(DatasetError, match="several CASME II coding files"):
        read_dataset("casme2", tmp_path)
    (s,) = read_dataset("casme2", tmp_path, tmp_path / "CASME2-coding-b.xlsx")
    assert (s.label, s.apex) == ("disgust", 2)


# ----------------------------------------------------------------------------- SAMM

SAMM_FIRST_ROW = SAMM_PREAMBLE_ROWS + 2  # preamble, header, then the first clip


def test_samm_finds_the_header_below_free_text(tmp_path):
    make_samm(
        tmp_path,
        [
            Coded(6, "006_1_2", 5562, 5588, 5605, "Anger", numbers=range(5560, 5610)),
            Coded("011", "011_2_3", 99, 101, 104, "Other", numbers=range(98, 106)),
        ],
    )
    a, b = read_dataset("samm", tmp_path)
    assert a.key == "samm/006/006_1_2" and a.dataset == "samm" and a.label == "anger"
    assert a.frames[0].name == "006_05560.jpg" and a.frame_numbers[0] == 5560
    assert (a.onset, a.apex, a.offset) == (5562, 5588, 5605)
    assert a.extra["row"].endswith(f"row {SAMM_FIRST_ROW}")
    assert b.subject == "samm/011" and b.label == "other"
    assert b.frame_numbers == tuple(range(98, 106))
    # greyscale frames come back as three equal channels
    frames = load_frames(b, 99, 101)
    assert frames.shape == (3, 8, 8, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(
        frames[..., 0], frames[..., 2]
    )
    np.testing.assert_allclose(
        frames.reshape(3, -1).mean(1), [frame_value(n) for n in (99, 100, 101)], atol=2
    )


def test_samm_error_names_the_row_below_the_preamble(tmp_path):
    sheet = make_samm(
        tmp_path,
        [
            Coded(6, "006_1_2", 1, 2, 3, "Happiness"),
            Coded(6, "006_1_3", 1, 7, 3, "Happiness"),
        ],
    )
    with pytest.raises(DatasetError, match="apex frame 7 is outside") as err:
        read_dataset("samm", tmp_path)
    assert f"{sheet} row {SAMM_FIRST_ROW + 1}" in str(err.value)


def test_samm_sheet_without_header_lists_missing_columns(tmp_path):
    write_frames(tmp_path / "006" / "006_1_2", range(1, 4))
    write_xlsx(
        tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx",
        [("notes",), ("Subject", "Filename", "Onset Frame", "Offset Frame"), (6, "006_1_2", 1, 3)],
    )
    with pytest.raises(DatasetError) as err:
        read_dataset("samm", tmp_path)
    assert "SAMM_Micro_FACS_Codes_v2.xlsx" in str(err.value)
    assert "missing Apex Frame, Estimated Emotion" in str(err.value)
    assert "closest: row 2" in str(err.value)


def test_casme2_empty_frame_folder_and_empty_sheet(tmp_path):
    sheet = make_casme2(tmp_path, [Coded(1, "EP01_01", 1, 2, 3, "others", numbers=[])])
    (tmp_path / "sub01" / "EP01_01").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no numbered image files") as err:
        read_dataset("casme2", tmp_path)
    assert f"{sheet} row {CASME2_ROW}" in str(err.value)
    make_casme2(tmp_path, [])
    with pytest.raises(DatasetError, match="no samples found"):
        read_dataset("casme2", tmp_path)
