"""SMIC-HS, the composite set, precomputed manifests and the composite release."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from fixtures_datasets import (
    Coded,
    make_casme2,
    make_composite_release,
    make_samm,
    make_smic,
    write_frames,
    write_image,
)

from msmmt.core.labels import map_label
from msmmt.core.records import DatasetError, Sample, SheetRowsError
from msmmt.data.readers import filter_class_set, read_dataset, write_manifest
from msmmt.data.readers.composite_release import read_composite_release

# ----------------------------------------------------------------------------- SMIC-HS

SMIC_CLIPS = [
    ("s1", "negative", "s1_ne_01", range(99, 105)),
    ("s1", "positive", "s1_po_01", range(1, 4)),
    ("s10", "surprise", "s10_sur_02", range(7, 12)),
    ("s2", "negative", "s2_ne_03", range(1, 3)),
]


def test_smic_labels_from_folders_and_middle_apex(tmp_path):
    hs = make_smic(tmp_path / "SMIC_all_raw" / "HS", SMIC_CLIPS)
    write_frames(hs / "s1" / "non_micro" / "x" / "clip", range(1, 3), "image{n}.bmp")
    make_smic(tmp_path / "SMIC_all_raw" / "VIS", [("s1", "positive", "s1_po_01", range(1, 3))])
    samples = read_dataset("smic", tmp_path)  # finds SMIC_all_raw/HS, not VIS
    # subjects in natural order (s2 before s10), then emotion folder, then clip
    assert [s.key for s in samples] == [
        "smic/s1/s1_ne_01",
        "smic/s1/s1_po_01",
        "smic/s2/s2_ne_03",
        "smic/s10/s10_sur_02",
    ]
    assert [s.label for s in samples] == ["negative", "positive", "negative", "surprise"]
    ne = samples[0]
    assert ne.dataset == "smic" and ne.subject == "smic/s1"
    assert ne.frame_numbers == tuple(range(99, 105))
    assert [p.name for p in ne.frames[:3]] == ["image99.bmp", "image100.bmp", "image101.bmp"]
    # first / last frame, apex the middle: 99..104 -> 101.5 -> 101 (lower on a tie)
    assert (ne.onset, ne.apex, ne.offset, ne.apex_estimated) == (99, 101, 104, True)
    assert "apex" in ne.extra["assumed"]
    assert (samples[1].onset, samples[1].apex, samples[1].offset) == (1, 2, 3)
    assert (samples[2].onset, samples[2].apex, samples[2].offset) == (1, 1, 2)
    assert all(str(hs) in str(s.frames[0]) for s in samples)
    # ROOT may also be the HS folder itself
    assert [s.key for s in read_dataset("smic", hs)] == [s.key for s in samples]


def test_smic_errors(tmp_path):
    make_smic(tmp_path / "HS", [("s1", "neutral", "s1_x_01", range(1, 3))])
    with pytest.raises(DatasetError, match="unknown emotion folder 'neutral'") as err:
        read_dataset("smic", tmp_path)
    assert str(tmp_path / "HS" / "s1" / "micro" / "neutral") in str(err.value)
    empty = tmp_path / "other" / "HS" / "s1" / "micro" / "positive" / "s1_po_01"
    empty.mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no numbered image files") as err:
        read_dataset("smic", tmp_path / "other")
    assert str(empty) in str(err.value)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="found no SMIC-HS folder"):
        read_dataset("smic", tmp_path / "flat")


def test_smic_same_clip_under_two_emotions_is_a_duplicate(tmp_path):
    make_smic(
        tmp_path, [("s3", "negative", "c1", range(1, 3)), ("s3", "surprise", "c1", range(1, 3))]
    )
    with pytest.raises(DatasetError, match="duplicate clip smic/s3/c1"):
        read_dataset("smic", tmp_path)


# ----------------------------------------------------------------------------- composite

CASME2_PART = [
    Coded(1, "EP01_01", 1, 2, 3, "happiness"),
    Coded(1, "EP01_02", 1, 2, 3, "others"),
    Coded(2, "EP03_01", 1, 2, 3, "fear"),
    Coded(2, "EP03_02", 1, 2, 3, "sadness"),
    Coded(3, "EP04_01", 1, 2, 3, "repression"),
    Coded(3, "EP04_02", 1, 2, 3, "surprise"),
    Coded(4, "EP12_01f", 1, "/", 3, "disgust"),  # dropped by name
    Coded(5, "EP09_05f", 1, 1, 3, "disgust"),  # dropped by name
    Coded(5, "EP12_03f", 1, 2, 3, "surprise"),  # in the official list: kept
    Coded(24, "EP02_07", 1, 2, 3, "surprise"),  # dropped by name
    Coded(24, "EP02_08", 1, 2, 3, "disgust"),
]
SAMM_PART = [
    Coded(6, "006_1_1", 1, 2, 3, "Anger"),
    Coded(6, "006_1_2", 1, 2, 3, "Contempt"),
    Coded(7, "007_1_1", 1, 2, 3, "Other"),
    Coded(7, "007_1_2", 1, 2, 3, "Fear"),  # SAMM fear stays (negative)
    Coded(7, "007_1_3", 1, 2, 3, "Happiness"),
]
SMIC_PART = [
    ("s1", "negative", "s1_ne_01", range(1, 4)),
    ("s1", "positive", "s1_po_01", range(1, 4)),
    ("s2", "surprise", "s2_sur_01", range(1, 4)),
]
# Written by hand from DESIGN.md's composite definition, not from the code.
COMPOSITE_EXPECTED = {
    "casme2/sub01/EP01_01": ("positive", "happiness"),
    "casme2/sub03/EP04_01": ("negative", "repression"),
    "casme2/sub03/EP04_02": ("surprise", "surprise"),
    "casme2/sub05/EP12_03f": ("surprise", "surprise"),
    "casme2/sub24/EP02_08": ("negative", "disgust"),
    "samm/006/006_1_1": ("negative", "anger"),
    "samm/006/006_1_2": ("negative", "contempt"),
    "samm/007/007_1_2": ("negative", "fear"),
    "samm/007/007_1_3": ("positive", "happiness"),
    "smic/s1/s1_ne_01": ("negative", "negative"),
    "smic/s1/s1_po_01": ("positive", "positive"),
    "smic/s2/s2_sur_01": ("surprise", "surprise"),
}


def make_composite(root):
    make_casme2(root / "CASME2", CASME2_PART)
    make_samm(root / "SAMM", SAMM_PART)
    make_smic(root / "SMIC" / "HS", SMIC_PART)
    return root


def test_composite_maps_three_classes_and_drops(tmp_path):
    samples = read_dataset("composite", make_composite(tmp_path))
    got = {s.key: (s.label, s.extra["emotion"]) for s in samples}
    assert got == COMPOSITE_EXPECTED
    assert len({s.subject for s in samples}) == 8
    assert {s.dataset for s in samples} == {"casme2", "samm", "smic"}
    # frames and marks survive the mapping
    s = next(s for s in samples if s.key == "casme2/sub01/EP01_01")
    assert (s.onset, s.apex, s.offset, len(s.frames)) == (1, 2, 3, 6)


def test_composite_annotations_dict(tmp_path):
    root = make_composite(tmp_path / "c")
    moved = tmp_path / "sheets" / "casme2.xlsx"
    moved.parent.mkdir()
    (root / "CASME2" / "CASME2-coding-test.xlsx").rename(moved)
    with pytest.raises(DatasetError, match="no CASME II coding file"):
        read_dataset("composite", root)
    assert len(read_dataset("composite", root, {"casme2": moved})) == len(COMPOSITE_EXPECTED)
    with pytest.raises(ValueError, match="unknown keys"):
        read_dataset("composite", root, {"smic": moved})
    with pytest.raises(ValueError, match="must be a dict"):
        read_dataset("composite", root, moved)


def test_composite_needs_each_part(tmp_path):
    make_casme2(tmp_path / "CASME2", CASME2_PART[:1])
    make_smic(tmp_path / "SMIC-HS", SMIC_PART)
    with pytest.raises(DatasetError, match="expected one SAMM folder") as err:
        read_dataset("composite", tmp_path)
    assert str(tmp_path) in str(err.value)


def test_map_label_keeps_composite_classes():
    for name in ("positive", "negative", "surprise"):
        for dataset in ("casme2", "samm", "smic"):
            assert map_label(dataset, name, "composite") == name


def test_filter_class_set_maps_and_drops(tmp_path):
    make_casme2(tmp_path, CASME2_PART)
    samples = read_dataset("casme2", tmp_path)
    sde = filter_class_set(samples, "casme2")
    # fear and sadness are not CASME II SDE classes; the rest keep their emotion
    assert [s.label for s in sde] == [
        "happiness", "others", "repression", "surprise", "disgust",
        "disgust", "surprise", "surprise", "disgust",
    ]  # fmt: skip
    cde = filter_class_set(samples, "composite")
    assert [s.label for s in cde] == [
        "positive", "negative", "surprise", "negative", "negative", "surprise", "surprise",
        "negative",
    ]  # fmt: skip
    assert [s.extra["emotion"] for s in cde][:2] == ["happiness", "repression"]
    # mapped samples remember their emotion, so they map to another class set again
    assert [s.label for s in filter_class_set(cde, "casme2")][:2] == ["happiness", "repression"]
    assert samples[0].label == "happiness"  # the input is left alone


# ----------------------------------------------------------------------------- precomputed


def _image_sample(tmp_path, dataset, subject, clip, label, i):
    return Sample(
        dataset=dataset,
        subject=subject,
        clip=clip,
        label=label,
        texture_image=write_image(tmp_path / "cache" / "img" / f"{i}_t.png", i),
        motion_image=write_image(tmp_path / "cache" / "img" / f"{i}_m.png", 100 + i),
    )


def test_manifest_round_trip_with_relative_paths(tmp_path):
    samples = [
        _image_sample(tmp_path, "casme2", "casme2/sub01", "EP01_01", "happiness", 0),
        _image_sample(tmp_path, "smic", "smic/s1", "s1_ne_01", "negative", 1),
    ]
    path = write_manifest(samples, tmp_path / "cache" / "manifest.csv")
    assert sorted(p.name for p in path.parent.iterdir()) == ["img", "manifest.csv"]  # no temp left
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "dataset", "subject", "clip", "label", "texture_image", "motion_image", "apex", "apex_source"
    ]
    assert rows[0]["apex"] == rows[0]["apex_source"] == ""  # no apex known
    assert rows[0]["texture_image"] == "img/0_t.png" and rows[1]["motion_image"] == "img/1_m.png"
    for root in (path, path.parent):
        back = read_dataset("precomputed", root)
        assert back == samples
        assert all(s.frames == () and s.texture_image.is_file() for s in back)
    # a manifest written before the columns were renamed (sample, flow_image) reads the same
    text = path.read_text()
    path.write_text(text.replace(",clip,", ",sample,", 1).replace("motion_image", "flow_image", 1))
    assert read_dataset("precomputed", path) == samples


def test_manifest_records_the_apex_and_how_it_was_obtained(tmp_path):
    annotated, estimated, middle = (
        _image_sample(tmp_path, "casme2", f"casme2/sub0{i}", "EP01", "happiness", i) for i in range(3)
    )
    samples = [
        dataclasses.replace(annotated, apex=12),
        dataclasses.replace(estimated, apex=30, apex_estimated=True, extra={"apex_source": "motion"}),
        dataclasses.replace(middle, apex=7, apex_estimated=True),  # not estimated: the middle frame
    ]
    path = write_manifest(samples, tmp_path / "cache" / "manifest.csv")
    with path.open(newline="") as f:
        cells = [(r["apex"], r["apex_source"]) for r in csv.DictReader(f)]
    assert cells == [("12", "annotated"), ("30", "motion"), ("7", "middle")]
    back = read_dataset("precomputed", path)
    assert back == samples and [s.extra["apex_source"] for s in back] == ["annotated", "motion", "middle"]
    path.write_text(path.read_text().replace(",motion\n", ",guessed\n"))
    with pytest.raises(DatasetError, match=r"row 3: apex_source 'guessed' is not one of annotated"):
        read_dataset("precomputed", path)


def test_manifest_absolute_paths_and_subject_prefix(tmp_path):
    t = write_image(tmp_path / "a" / "t.png", 1)
    m = write_image(tmp_path / "a" / "m.png", 2)
    manifest = tmp_path / "b" / "list.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        f"dataset,subject,sample,label,texture_image,flow_image\nSAMM,006,006_1_2,Anger,{t},{m}\n"
    )
    (s,) = read_dataset("precomputed", manifest)
    assert (s.dataset, s.subject, s.clip, s.label) == ("samm", "samm/006", "006_1_2", "anger")
    assert s.texture_image == t and s.motion_image == m


@pytest.mark.parametrize("motion", ["motion_image", "flow_image"])  # today's and old manifests
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("casme2,sub01,EP1,happiness,t.png,missing.png", "{motion} .*missing.png does not exist"),
        ("casme2,sub01,EP1,joy,t.png,m.png", "unknown label 'joy'"),
        ("casme2,sub01,EP0,happiness,t.png,m.png", "duplicate clip casme2/sub01/EP0"),
        ("casme2,,EP1,happiness,t.png,m.png", "empty subject"),
    ],
)
def test_manifest_errors_name_file_and_row(tmp_path, line, expected, motion):
    write_image(tmp_path / "t.png", 1)
    write_image(tmp_path / "m.png", 2)
    path = tmp_path / "manifest.csv"
    clip = "clip" if motion == "motion_image" else "sample"
    path.write_text(
        f"dataset,subject,{clip},label,texture_image,{motion}\n"
        f"casme2,sub01,EP0,happiness,t.png,m.png\n{line}\n"
    )
    expected = expected.format(motion=motion)
    with pytest.raises(DatasetError, match=expected) as err:
        read_dataset("precomputed", tmp_path)
    assert f"{path} row 3" in str(err.value)


def test_manifest_missing_column_and_missing_file(tmp_path):
    (tmp_path / "manifest.csv").write_text("dataset,subject,sample,label,texture_image\n")
    with pytest.raises(DatasetError, match="missing flow_image"):
        read_dataset("precomputed", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="manifest .*empty.manifest.csv does not exist"):
        read_dataset("precomputed", tmp_path / "empty")
    with pytest.raises(ValueError, match="needs both texture_image and motion_image"):
        write_manifest([Sample("smic", "smic/s1", "c", "positive")], tmp_path / "m.csv")


# ----------------------------------------------------------------------------- composite release

RELEASE_ROWS = [
    ("smic", "s1", "s1_ne_01", 0, "s1_ne_01.jpg"),
    ("CASME2", "sub01", "EP02_01f", 1, "sub01_EP02_01f"),
    ("SAMM", "006", "006_1_2", 2, "006_1_2.png"),
    ("casme2", "sub02", "EP09_01", "1", "sub02_EP09_01.jpg"),
]


def test_composite_release_with_whitespace_quirk(tmp_path):
    csv_path, apex_dir, flow_dir = make_composite_release(
        tmp_path, RELEASE_ROWS, flow_names={0: "s1_s1_ne_01 .png"}
    )
    samples = read_dataset("composite-release", tmp_path)
    assert [(s.dataset, s.subject, s.clip, s.label) for s in samples] == [
        ("smic", "smic/s1", "s1_ne_01", "negative"),
        ("casme2", "casme2/sub01", "EP02_01f", "positive"),
        ("samm", "samm/006", "006_1_2", "surprise"),
        ("casme2", "casme2/sub02", "EP09_01", "positive"),
    ]
    assert samples[0].motion_image == flow_dir / "s1_s1_ne_01 .png"
    assert samples[0].texture_image == apex_dir / "s1_ne_01.jpg"
    assert samples[1].texture_image == apex_dir / "sub01_EP02_01f.jpg"  # name without extension
    assert samples[2].motion_image == flow_dir / "006_006_1_2.png"
    assert all(s.frames == () for s in samples)
    # the three classes map to themselves in the composite class set
    assert [s.label for s in filter_class_set(samples, "composite")] == [s.label for s in samples]


def test_composite_release_overrides_and_errors(tmp_path):
    csv_path, apex_dir, flow_dir = make_composite_release(tmp_path / "r", RELEASE_ROWS)
    # a second folder holding the first apex image: defaults pick the one holding all
    write_image(tmp_path / "r" / "extra" / "s1_ne_01.jpg", 0)
    samples = read_dataset("composite-release", tmp_path / "r")
    assert samples[0].texture_image == apex_dir / "s1_ne_01.jpg"
    other = tmp_path / "r" / "other.csv"
    other.write_text("dataset,sub,filename_o,label,imagename\nsmic,s1,s1_ne_01,2,s1_ne_01.jpg\n")
    with pytest.raises(DatasetError, match="expected one CSV.*give the CSV's path instead"):
        read_dataset("composite-release", tmp_path / "r")
    # the CSV's path picks it (the folder is its parent), as --data FOLDER/labels.csv does
    assert read_dataset("composite-release", csv_path) == samples
    (s,) = read_composite_release(
        tmp_path / "r", csv="other.csv", apex_dir=apex_dir, flow_dir="uv_strain"
    )
    assert s.label == "surprise"
    # with other.csv (one row) both apex folders hold every image: ambiguous
    with pytest.raises(DatasetError, match="expected one folder of apex images") as err:
        read_dataset("composite-release", tmp_path / "r", annotations=other)
    assert "apex_crops" in str(err.value) and "extra" in str(err.value)
    (flow_dir / "006_006_1_2.png").unlink()
    with pytest.raises(DatasetError, match="flow image 006_006_1_2.png not found") as err:
        read_composite_release(tmp_path / "r", csv=csv_path)
    assert f"{csv_path} row 4" in str(err.value)
    (apex_dir / "s1_ne_01.jpg").write_bytes(b"notajpeg")
    with pytest.raises(DatasetError) as err:
        read_composite_release(tmp_path / "r", csv=csv_path)
    assert f"{csv_path} row 2: apex image {apex_dir / 's1_ne_01.jpg'}: not a readable image" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("mmew", "s1", "c", 0, "a.jpg"), "unknown dataset 'mmew'"),
        (("smic", "s1", "c", 5, "a.jpg"), "label '5' is not 0, 1 or 2"),
        (("smic", "s1", "s1_ne_01", 0, "a.jpg"), "duplicate clip smic/s1/s1_ne_01"),
    ],
)
def test_composite_release_row_errors(tmp_path, row, expected):
    csv_path, apex_dir, flow_dir = make_composite_release(tmp_path, RELEASE_ROWS[:1] + [row])
    with pytest.raises(DatasetError, match=expected) as err:
        read_composite_release(tmp_path, csv=csv_path, apex_dir=apex_dir, flow_dir=flow_dir)
    assert f"{csv_path} row 3" in str(err.value)


def test_composite_release_reports_every_bad_row_and_keeps_the_good_ones(tmp_path):
    rows = RELEASE_ROWS + [("mmew", "s9", "c9", 0, "c9.jpg"), ("smic", "s8", "c8", 7, "c8.jpg")]
    csv_path, apex_dir, flow_dir = make_composite_release(tmp_path, rows)
    (flow_dir / "006_006_1_2.png").unlink()  # row 4
    with pytest.raises(SheetRowsError) as err:
        read_composite_release(tmp_path, csv=csv_path, apex_dir=apex_dir, flow_dir=flow_dir)
    wheres = [p.error.split(":")[0] for p in err.value.problems]
    assert wheres == [f"{csv_path} row {n}" for n in (4, 6, 7)]
    assert [p.clip for p in err.value.problems] == ["006_1_2", "c9", "c8"]
    assert [s.clip for s in err.value.samples] == ["s1_ne_01", "EP02_01f", "EP09_01"]
    assert "3 unusable annotation row(s)" in str(err.value)
