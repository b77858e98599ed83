"""Using a trained model: `msmmt train`, `predict` and `explain` end to end on synthetic
face clips, their errors, and the patch-weight drawing."""


import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from msmmt.cli import app
from msmmt.config import load_config
from msmmt.explain import draw_patch_weights, patch_heatmap, split_key
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
