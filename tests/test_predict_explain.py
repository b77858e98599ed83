"""Using a trained model: `msmmt train`, `predict` and `explain` end to end on synthetic
face clips, their errors, and the patch-weight drawing."""

import json
import re

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import load_config
from msmmt.core.keyframes import sample_key_frames
from msmmt.inference.explain import draw_patch_weights, patch_heatmap, split_key
from msmmt.model import build_model
from msmmt.model.checkpoint import save_checkpoint

runner = CliRunner()

# A tiny model on the demo preset's preprocessing (48 px images).
TINY = [
    "model.embed_dim=32",
    "model.depth=2",
    "model.num_heads=2",
    "model.fusion_hidden=32",
    "model.proj_dim=16",
    "train.epochs=2",
    "train.batch_size=4",
]


def _sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


# --- drawing -----------------------------------------------------------------------------


def test_split_key():
    assert split_key("motion@4") == ("motion", 4)
    with pytest.raises(ValueError, match="MODALITY@SCALE"):
        split_key("motion")


def test_patch_heatmap_places_each_patch_and_crops_the_padding():
    # Scale 4 of a 224 model with 16 px patches: the 56 px image gives a padded 4x4 grid,
    # each patch covering 16/56 of the side; drawn on a 112 px face a cell is 32 px.
    grid = np.arange(16, dtype=float).reshape(4, 4)
    heat = patch_heatmap(grid, 112, 16 / 56 * 112)
    assert heat.shape == (112, 112)
    assert heat[0, 0] == 0 and heat[0, 31] == 0 and heat[0, 32] == 1
    assert heat[31, 0] == 0 and heat[32, 0] == 4
    # the last column of patches covers 96..127, of which 96..111 is inside the image
    assert heat[111, 111] == 15 and heat[100, 100] == 15
    # a grid that fits exactly: each of 2 cells spans half the image
    assert np.array_equal(patch_heatmap(np.array([[0.0, 1.0]]), 4, 2.0)[0], [0, 0, 1, 1])


def test_draw_patch_weights_writes_a_figure(tmp_path):
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    weights = {
        f"{m}@{s}": rng.random((8 // s, 8 // s)) for m in ("texture", "motion") for s in (1, 2, 4)
    }
    out = draw_patch_weights(
        face, {"texture": face, "motion": face}, weights, 6, 48, tmp_path / "f.png"
    )
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] > img.shape[0]  # 2 rows, 4 columns
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="no patch weights"):
        draw_patch_weights(face, {}, {}, 6, 48, tmp_path / "g.png")


def test_patch_weights_are_drawn_on_an_absolute_scale(tmp_path):
    """Uniform maps at g = 0.2 and g = 0.9 must look different (a per-map stretch would
    draw both alike), and the same map drawn twice is identical."""
    face = np.full((48, 48, 3), 128, dtype=np.uint8)

    def draw(level, name):
        weights = {"motion@1": np.full((8, 8), level)}
        path = draw_patch_weights(face, {}, weights, 6, 48, tmp_path / name, variant="paper")
        return cv2.imread(str(path)).astype(int)

    low, high, again = draw(0.2, "a.png"), draw(0.9, "b.png"), draw(0.2, "c.png")
    assert np.array_equal(low, again)
    assert np.abs(low - high).max() > 50


# --- errors ------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    cfg = load_config("demo", TINY)
    return save_checkpoint(
        build_model(cfg.model), cfg, tmp_path / "model", extra={"class_names": ["a", "b", "c"]}
    )


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), str(clip)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope'}: no such checkpoint folder" in result.output


def test_corrupt_checkpoint_names_the_file(checkpoint, tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["predict", str(checkpoint), str(clip)])
    assert result.exit_code == 2
    assert "model.safetensors" in result.output and "not a usable checkpoint" in result.output
    (checkpoint / "config.json").write_text("{not json")
    result = runner.invoke(app, ["explain", str(checkpoint), str(clip)])
    assert result.exit_code == 2 and "config.json" in result.output


def test_missing_clip_is_a_clear_error(checkpoint, tmp_path):
    result = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope'}: no such clip" in result.output


def test_train_on_a_missing_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(
        app, ["train", "demo", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in result.output


# --- end to end on synthetic face clips --------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """2 synthetic subjects x 3 clips, preprocessed with the demo preset, a tiny model
    trained on them with `msmmt train`."""
    from msmmt.data.readers import read_dataset
    from msmmt.data.synthetic import generate
    from msmmt.preprocess.batch import preprocess_dataset

    root = tmp_path_factory.mktemp("e2e")
    generate(root / "data", subjects=2, clips_per_subject=3, size=160, seed=0)
    raw = read_dataset("synthetic", root / "data")
    summary = preprocess_dataset(
        raw, load_config("demo").preprocess, root / "cache", workers=1, progress=False
    )
    assert summary.failed == 0
    result = runner.invoke(
        app,
        [
            "-q",
            *_sets(TINY),
            "train",
            "demo",
            "--data",
            str(root / "cache"),
            "--out",
            str(root / "model"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("saved ") and len(result.output.splitlines()) == 1  # -q
    return root, {s.key: s for s in raw}


def test_train_writes_a_checkpoint_with_classes_preprocessing_and_history(trained):
    root, raw = trained
    model = root / "model"
    assert {"model.safetensors", "config.json", "extra.json", "history.csv"} <= {
        p.name for p in model.iterdir()
    }
    extra = json.loads((model / "extra.json").read_text())
    cfg = load_config("demo", TINY)
    assert extra["class_names"] == ["negative", "positive", "surprise"]
    assert extra["preprocess"] == cfg.preprocess.model_dump(mode="json")
    assert extra["trained_on"]["clips"] == len(raw) and extra["trained_on"]["subjects"] == 2
    rows = (model / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 1 + cfg.train.epochs


def test_predict_preprocesses_a_clip_exactly_as_training_did(trained):
    from msmmt.data.readers import filter_class_set, read_dataset
    from msmmt.engine.trainer import predict_proba
    from msmmt.model.checkpoint import load_checkpoint

    root, raw = trained
    cached = filter_class_set(read_dataset("precomputed", root / "cache"), "composite")[1]
    clip = raw[cached.key]
    marks = ["--onset", str(clip.onset), "--apex", str(clip.apex), "--offset", str(clip.offset)]
    result = runner.invoke(
        app, ["predict", str(root / "model"), str(clip.frames[0].parent), *marks, "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["assumed"] is None and (out["onset"], out["apex"]) == (clip.onset, clip.apex)
    model, cfg, _ = load_checkpoint(root / "model")
    expected = predict_proba(model, [cached], cfg)[0]
    got = np.array([out["probabilities"][c] for c in ("negative", "positive", "surprise")])
    assert np.allclose(got, expected, atol=1e-5)
    assert out["prediction"] == ("negative", "positive", "surprise")[int(expected.argmax())]


def test_predict_table_says_what_it_assumed(trained):
    root, raw = trained
    clip = next(iter(raw.values()))
    folder = clip.frames[0].parent
    result = runner.invoke(app, ["predict", str(root / "model"), str(folder)])
    assert result.exit_code == 0, result.output
    assert "assumed: onset = first frame" in result.output
    # no --apex: estimated from the facial motion, near the synthetic clip's true apex
    estimated = re.search(r"apex = frame (\d+), estimated from facial motion", result.output)
    assert estimated and abs(int(estimated.group(1)) - clip.apex) <= 3, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class"))
    table = [line for line in lines[header + 1 :] if line.strip()]
    probs = [float(line.split()[1]) for line in table]
    assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=2e-3)
    predicted = next(line for line in lines if line.startswith("prediction:")).split()[1]
    assert [line.split()[0] for line in table if line.endswith("<-")] == [predicted]


def test_explain_draws_the_patch_weights(trained, tmp_path):
    root, raw = trained
    folder = next(iter(raw.values())).frames[0].parent
    fig = tmp_path / "out" / "fig.png"
    result = runner.invoke(app, ["explain", str(root / "model"), str(folder), "--out", str(fig)])
    assert result.exit_code == 0, result.output
    default = load_config("demo").model.patch_weighting
    assert default in ("post-norm", "attention")
    assert f"patch weights ({default}: applied" in result.output
    img = cv2.imread(str(fig))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > img.shape[0]


def test_explain_writes_the_default_name_into_a_folder_out(trained, tmp_path):
    root, raw = trained
    folder = next(iter(raw.values())).frames[0].parent
    existing = tmp_path / "figures"
    existing.mkdir()
    for out, where in ((str(existing), existing), (f"{tmp_path / 'new'}/", tmp_path / "new")):
        result = runner.invoke(app, ["explain", str(root / "model"), str(folder), "--out", out])
        assert result.exit_code == 0, result.output
        assert [p.name for p in where.iterdir()] == [f"{folder.name}_explain.png"]
        assert cv2.imread(str(where / f"{folder.name}_explain.png")) is not None


@pytest.mark.parametrize(("out", "what"), [("fig", "no suffix"), ("fig.txt", "suffix .txt")])
def test_explain_refuses_an_out_without_an_image_suffix_before_any_work(tmp_path, out, what):
    # the checkpoint and clip do not exist: the --out error comes first
    out = str(tmp_path / out)
    args = ["explain", str(tmp_path / "model"), str(tmp_path / "clip"), "-o", out]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --out {out}: {what}; expected an image suffix (")
    listed = result.output.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert {"png", "pdf", "svg"} <= set(listed)  # matplotlib's list of what it saves
    assert list(tmp_path.iterdir()) == []


def test_explain_help_says_a_folder_out_is_accepted():
    result = runner.invoke(app, ["explain", "--help"])
    help_text = " ".join(result.output.split())
    assert "Figure to write, in the format of its suffix (.png, .pdf, .svg, ...)" in help_text
    assert "or a folder (an existing one, or a path ending in /) to write CLIP-NAME_explain.png" in (
        help_text
    )


def test_a_clip_without_a_face_is_a_clear_error(trained, tmp_path):
    root, _ = trained
    rng = np.random.default_rng(0)
    clip = tmp_path / "noise"
    clip.mkdir()
    for i in range(1, 7):
        cv2.imwrite(str(clip / f"img{i}.jpg"), rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))
    result = runner.invoke(app, ["predict", str(root / "model"), str(clip)])
    assert result.exit_code == 2
    assert str(clip) in result.output and "no face" in result.output


def test_frame_marks_outside_the_clip_are_a_clear_error(trained):
    root, raw = trained
    folder = next(iter(raw.values())).frames[0].parent
    result = runner.invoke(app, ["predict", str(root / "model"), str(folder), "--apex", "999"])
    assert result.exit_code == 2 and "999" in result.output


def test_a_model_trained_on_apex_crops_gets_the_apex_face_as_texture(trained, tmp_path):
    import shutil

    import torch

    from msmmt.core.keyframes import sample_key_frames
    from msmmt.data.readers import load_frames
    from msmmt.engine.dataset import to_tensor
    from msmmt.model.checkpoint import load_checkpoint
    from msmmt.preprocess.clip import process_clip

    root, raw = trained
    model_dir = shutil.copytree(root / "model", tmp_path / "model")
    extra = json.loads((model_dir / "extra.json").read_text())
    (model_dir / "extra.json").write_text(json.dumps({**extra, "texture": "apex"}))
    clip = next(iter(raw.values()))
    marks = ["--onset", str(clip.onset), "--apex", str(clip.apex), "--offset", str(clip.offset)]
    result = runner.invoke(
        app, ["predict", str(model_dir), str(clip.frames[0].parent), *marks, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "apex face crops" in result.stderr
    got = list(json.loads(result.stdout)["probabilities"].values())
    model, cfg, _ = load_checkpoint(model_dir)
    frames = load_frames(clip)
    marks = sample_key_frames(clip)
    images = process_clip(frames, marks.onset, marks.apex, cfg.preprocess, offset_idx=marks.offset)
    size = cfg.model.img_size
    with torch.no_grad():
        logits = model(
            to_tensor(images.face, size)[None], to_tensor(images.motion, size)[None]
        ).logits
    assert np.allclose(got, torch.softmax(logits, 1)[0].numpy(), atol=1e-5)


def test_predict_reads_a_video_file(trained, tmp_path):
    from msmmt.data.readers import load_frames

    root, raw = trained
    clip = next(iter(raw.values()))
    frames = load_frames(clip)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    result = runner.invoke(app, ["predict", str(root / "model"), str(video), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # video frames are numbered from 0: the whole clip, apex estimated from the motion
    assert (out["onset"], out["offset"]) == (0, len(frames) - 1)
    assert "estimated from facial motion" in out["assumed"]
    assert abs(out["apex"] - sample_key_frames(clip).apex) <= 3
    assert sum(out["probabilities"].values()) == pytest.approx(1.0)


def test_one_predictor_analyses_many_clips_as_training_did(trained):
    from msmmt.data.readers import filter_class_set, read_dataset
    from msmmt.engine.trainer import predict_proba
    from msmmt.inference.predict import Predictor

    root, raw = trained
    predictor = Predictor(root / "model")
    cached = filter_class_set(read_dataset("precomputed", root / "cache"), "composite")
    expected = predict_proba(predictor.model, cached, predictor.config)
    for sample, want in zip(cached, expected, strict=True):
        clip = raw[sample.key]
        got = predictor.analyse(clip.frames[0].parent, clip.onset, clip.apex, clip.offset)
        assert np.allclose(got.probabilities, want, atol=1e-5), sample.key
        assert got.label == predictor.class_names[int(want.argmax())]
        assert set(got.output.patch_weights) == {
            f"{m}@{s}" for m in ("texture", "motion") for s in predictor.config.model.scales
        }


def test_the_python_route_makes_checkpoints_the_predictor_reads_as_msmmt_train_does(
    trained, tmp_path
):
    """fit + save_trained (no CLI): the predictor preprocesses a clip as training did, and
    a model trained on apex crops is known as such."""
    import dataclasses

    from msmmt.data.readers import filter_class_set, read_dataset
    from msmmt.engine.export import save_trained
    from msmmt.engine.trainer import fit, predict_proba
    from msmmt.inference.predict import Predictor

    root, raw = trained
    cfg = load_config("demo", TINY)
    cached = filter_class_set(read_dataset("precomputed", root / "cache"), "composite")
    result = fit(cfg, cached, progress=False)
    predictor = Predictor(save_trained(result, cfg, cached, tmp_path / "model"))
    assert predictor.class_names == ["negative", "positive", "surprise"]
    assert not predictor.texture_is_apex
    expected = predict_proba(result.model, cached[:1], cfg)[0]
    clip = raw[cached[0].key]
    got = predictor.analyse(clip.frames[0].parent, clip.onset, clip.apex, clip.offset)
    assert np.allclose(got.probabilities, expected, atol=1e-5)
    # the composite release's reader marks its apex crops; the checkpoint says so
    apex = [dataclasses.replace(s, extra={**s.extra, "texture": "apex"}) for s in cached]
    assert Predictor(save_trained(result, cfg, apex, tmp_path / "apex")).texture_is_apex
    with pytest.raises(ValueError, match="mix texture images"):
        save_trained(result, cfg, [*apex[:1], *cached[1:]], tmp_path / "mixed")


def test_predictor_of_a_blended_model_gives_the_blend(trained, tmp_path):
    """A checkpoint with a fitted pixel head (model.pixel_blend): the predictor's
    probabilities are the blend, as in evaluation, not the ViT's alone."""
    from msmmt.data.readers import filter_class_set, read_dataset
    from msmmt.engine.export import save_trained
    from msmmt.engine.trainer import fit, predict_parts, predict_proba
    from msmmt.inference.predict import Predictor

    root, raw = trained
    cfg = load_config("demo", [*TINY, "model.pixel_blend=0.5"])
    cached = filter_class_set(read_dataset("precomputed", root / "cache"), "composite")
    result = fit(cfg, cached, progress=False)
    predictor = Predictor(save_trained(result, cfg, cached, tmp_path / "model"))
    clip = raw[cached[0].key]
    got = predictor.analyse(clip.frames[0].parent, clip.onset, clip.apex, clip.offset)
    parts = predict_parts(result.model, cached[:1], cfg)
    assert np.allclose(got.probabilities, predict_proba(result.model, cached[:1], cfg)[0], atol=1e-5)
    assert np.allclose(got.probabilities, 0.5 * parts["vit"][0] + 0.5 * parts["pixel"][0], atol=1e-5)
    assert not np.allclose(parts["vit"][0], parts["pixel"][0], atol=1e-3)  # the blend shows


def test_predictor_and_explain_read_a_seed_ensemble(trained, tmp_path):
    """A checkpoint of two members and a pixel head: the predictor returns the ensemble's
    probabilities, and `msmmt explain` draws the members' mean patch weights."""
    from msmmt.data.readers import filter_class_set, read_dataset
    from msmmt.engine.export import save_trained
    from msmmt.engine.trainer import fit, predict_proba
    from msmmt.inference.predict import Predictor

    root, raw = trained
    cfg = load_config("demo", [*TINY, "model.members=2", "model.pixel_blend=0.5"])
    cached = filter_class_set(read_dataset("precomputed", root / "cache"), "composite")
    result = fit(cfg, cached, progress=False)
    model_dir = save_trained(result, cfg, cached, tmp_path / "model")
    extra = json.loads((model_dir / "extra.json").read_text())
    assert extra["epochs"] == cfg.train.epochs and extra["final_epoch"]["member"] == 2
    predictor = Predictor(model_dir)
    clip = raw[cached[0].key]
    got = predictor.analyse(clip.frames[0].parent, clip.onset, clip.apex, clip.offset)
    assert np.allclose(got.probabilities, predict_proba(result.model, cached[:1], cfg)[0], atol=1e-5)
    fig = tmp_path / "fig.png"
    out = runner.invoke(app, ["explain", str(model_dir), str(clip.frames[0].parent), "--out", str(fig)])
    assert out.exit_code == 0, out.output
    assert cv2.imread(str(fig)) is not None
