"""The readers on the quirks of the official releases, as public code that loads them shows.

Sources (see the readers' docstrings): the CASME II coding sheet's blank header cells, its
'/' apex (sub04/EP12_01f), an apex on the onset (sub05/EP09_05f) and an offset past the
cropped frames (sub16/EP01_08); the dated SAMM sheet ``SAMM_20181215_Micro_FACS_Codes_v2.xlsx``
with its header on row 1; the composite release's CSV (``dataset, sub, filename_o, label,
apex, imagename, sub_filename``), apex crops ``s01_s1_ne_01.jpg`` and flow images
``s01_s01_ne_01 .png``.
"""

from __future__ import annotations

import pytest
from fixtures_datasets import (
    Coded,
    make_casme2,
    make_samm,
    make_smic,
    write_frames,
    write_image,
    write_xlsx,
)

from msmmt.core.records import SheetRowsError
from msmmt.data.readers import read_dataset

# ----------------------------------------------------------------------------- CASME II


def test_casme2_official_sheet_quirks(tmp_path):
    # header with blank cells (pandas shows them as "Unnamed: 2" / "Unnamed: 6"), Subject
    # an integer, Cropped frames reg_img<n>.jpg holding onset..offset only
    write_xlsx(
        tmp_path / "CASME2-coding-20140508.xlsx",
        [
            ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
             "Action Units", "Estimated Emotion"),
            (4, "EP12_01f", None, 261, "/", 321, None, "4", "disgust"),
            (5, "EP09_05f", None, 40, 40, 58, None, "4", "disgust"),
            (16, "EP01_08", None, 73, 94, 110, None, "12", "happiness "),
        ],
    )  # fmt: skip
    write_frames(tmp_path / "sub04" / "EP12_01f", range(261, 322), "reg_img{n}.jpg")
    write_frames(tmp_path / "sub05" / "EP09_05f", range(40, 59), "reg_img{n}.jpg")
    write_frames(tmp_path / "sub16" / "EP01_08", range(73, 97), "reg_img{n}.jpg")
    a, b, c = read_dataset("casme2", tmp_path)
    assert a.subject == "casme2/sub04"
    assert (a.onset, a.apex, a.offset, a.apex_estimated) == (261, 291, 321, True)  # '/': middle
    assert (b.onset, b.apex, b.offset, b.apex_estimated) == (40, 40, 58, False)
    assert (c.label, c.onset, c.apex, c.offset) == ("happiness", 73, 94, 96)
    assert "offset 110 is past the last frame" in c.extra["assumed"]


# ----------------------------------------------------------------------------- SAMM


def test_samm_dated_sheet_with_its_header_on_row_1(tmp_path):
    make_samm(
        tmp_path / "SAMM",
        [Coded("006", "006_1_2", 5562, 5588, 5605, "Anger", numbers=range(5560, 5610))],
        sheet=tmp_path / "SAMM" / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx",
        preamble=False,
    )
    (s,) = read_dataset("samm", tmp_path / "SAMM")
    assert (s.key, s.label) == ("samm/006/006_1_2", "anger")
    assert (s.onset, s.apex, s.offset) == (5562, 5588, 5605)
    assert s.frames[0].name == "006_05560.jpg"


# ----------------------------------------------------------------------------- SMIC-HS


def _smic_with_bad_clips(hs):
    good = [
        ("s1", "negative", "s1_ne_01", range(1, 4)),
        ("s2", "surprise", "s2_sur_01", range(1, 4)),
    ]
    make_smic(hs, good)
    (hs / "s1" / "micro" / "positive" / "s1_po_01").mkdir(parents=True)  # no frames
    write_frames(hs / "s2" / "micro" / "neutral" / "s2_x_01", range(1, 3), "image{n}.bmp")
    return hs


def test_smic_records_bad_clips_and_reads_the_rest(tmp_path):
    hs = _smic_with_bad_clips(tmp_path / "HS")
    with pytest.raises(SheetRowsError) as err:
        read_dataset("smic", tmp_path)
    assert [s.key for s in err.value.samples] == ["smic/s1/s1_ne_01", "smic/s2/s2_sur_01"]
    problems = {p.clip: p for p in err.value.problems}
    assert sorted(problems) == ["s1_po_01", "s2_x_01"]
    assert problems["s1_po_01"].subject == "smic/s1"
    assert str(hs / "s1" / "micro" / "positive" / "s1_po_01") in problems["s1_po_01"].error
    assert "unknown emotion folder 'neutral'" in problems["s2_x_01"].error
    assert "\n" not in problems["s2_x_01"].error


def test_composite_gathers_smic_problems_with_the_other_parts(tmp_path):
    make_casme2(tmp_path / "CASME2", [Coded(1, "EP02_01f", 1, 2, 3, "happiness")])
    make_samm(tmp_path / "SAMM", [Coded(6, "006_1_2", 1, 2, 3, "Anger")])
    _smic_with_bad_clips(tmp_path / "SMIC" / "HS")
    with pytest.raises(SheetRowsError) as err:
        read_dataset("composite", tmp_path)
    assert [s.key for s in err.value.samples] == [
        "casme2/sub01/EP02_01f", "samm/006/006_1_2", "smic/s1/s1_ne_01", "smic/s2/s2_sur_01",
    ]  # fmt: skip
    assert [p.clip for p in err.value.problems] == ["s1_po_01", "s2_x_01"]


# ----------------------------------------------------------------------------- composite release


def test_composite_release_as_shared(tmp_path):
    # one row per part as in the shared CSV; the flow images all carry " .png", and the
    # release also holds per-fold copies of them deeper down
    rows = [
        ("casme2", "sub01", "EP02_01f", 1, "sub01_EP02_01f.jpg"),
        ("smic", "s01", "s01_ne_01", 0, "s01_s1_ne_01.jpg"),
        ("samm", "006", "006_1_2", 2, "006_006_1_2.jpg"),
    ]
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    for i, (dataset, sub, clip, label, imagename) in enumerate(rows):
        lines.append(f"{dataset},{sub},{clip},{label},,{imagename},")
        write_image(tmp_path / "datasets" / "combined_datasets_whole" / imagename, 10 + i)
        flow = f"{sub}_{clip} .png"
        write_image(tmp_path / "datasets" / "STSNet_whole_norm_u_v_os" / flow, 100 + i)
        write_image(tmp_path / "datasets" / "three_norm_u_v_os" / sub / "u_test" / "0" / flow, 1)
    (tmp_path / "combined_3_class2_for_optical_flow.csv").write_text("\n".join(lines) + "\n")
    samples = read_dataset("composite-release", tmp_path)
    assert [(s.subject, s.clip, s.label) for s in samples] == [
        ("casme2/sub01", "EP02_01f", "positive"),
        ("smic/s01", "s01_ne_01", "negative"),
        ("samm/006", "006_1_2", "surprise"),
    ]
    assert [s.texture_image.parent.name for s in samples] == ["combined_datasets_whole"] * 3
    assert [s.motion_image.name for s in samples] == [
        "sub01_EP02_01f .png", "s01_s01_ne_01 .png", "006_006_1_2 .png",
    ]  # fmt: skip
    assert {s.motion_image.parent.name for s in samples} == {"STSNet_whole_norm_u_v_os"}
