"""Configuration: presets, overrides, and errors that name the key at fault."""

import pytest
import yaml

from msmmt.config import (
    Config,
    ConfigError,
    departures_from_paper,
    list_presets,
    load_config,
    save_config,
)


def test_presets_exist_and_validate():
    assert {"paper", "cpu-small", "demo"} <= set(list_presets())
    for name in list_presets():
        assert isinstance(load_config(name), Config)


def test_paper_preset_has_the_papers_settings():
    cfg = load_config("paper")
    assert cfg.model.backbone == "vit_base_patch16_224"
    assert cfg.model.img_size == 224
    assert cfg.model.scales == [1, 2, 4]
    assert cfg.loss.alpha == pytest.approx(0.1)
    assert cfg.train.lr == pytest.approx(5e-5)
    assert cfg.train.weight_decay == pytest.approx(0.05)
    assert (cfg.train.batch_size, cfg.train.epochs) == (16, 50)
    assert cfg.preprocess.magnify_alpha == pytest.approx(10.0)


def test_small_presets_keep_more_than_one_patch_at_the_coarsest_scale():
    for name in ("cpu-small", "demo"):
        m = load_config(name).model
        assert m.img_size // max(m.scales) // m.patch_size >= 2, name


def test_overrides_are_parsed_as_yaml_and_applied():
    cfg = load_config("demo", ["loss.alpha=0.2", "model.scales=[1, 2]", "train.grad_clip=null"])
    assert cfg.loss.alpha == pytest.approx(0.2)
    assert cfg.model.scales == [1, 2]
    assert cfg.train.grad_clip is None


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.alpha=0.2", "model.alpha"),
        ("train.epochs=abc", "train.epochs"),
        ("loss.alpha=1.5", "loss.alpha"),
        ("nosuchsection.x=1", "nosuchsection"),
        ("model.scales=[1, 1]", "model"),
    ],
)
def test_bad_overrides_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("demo", [override])


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["model.alpha"])


def test_yaml_file_errors_name_file_and_key(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(f) in str(err.value) and "train.epoch" in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="preset"):
        load_config("no-such-preset")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"model:\n  depth: [1\n", "not valid YAML: line 3, column 1: expected ',' or ']'"),
        (b"a: b\n\tc: d\n", "not valid YAML: line 2, column 1: found character '\\t'"),
        (b"a: 1\nb: x\x01\n", "not valid YAML: line 2, column 5: unacceptable character"),
    ],
)
def test_unreadable_config_files_are_one_line_naming_file_and_place(tmp_path, content, message):
    f = tmp_path / "x.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    text = str(err.value)
    assert text.startswith(f"{f}: ") and message in text and "\n" not in text
    assert "<unicode string>" not in text


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)

def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config("cpu-small", ["seed=7"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text())["seed"] == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.class_set=casme2"], r"model\.num_classes is 3 but data\.class_set 'casme2' has 5"),
        (["model.num_classes=5"], r"model\.num_classes is 5 but data\.class_set 'composite' has 3"),
        (["model.img_size=64"], r"preprocess\.image_size 48 is smaller than model\.img_size 64"),
    ],
)
def test_settings_that_must_agree_are_checked_when_loading(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", overrides)
    # agreeing values pass, and a cached image larger than the model's base size is fine
    load_config("demo", ["data.class_set=casme2", "model.num_classes=5", "preprocess.image_size=96"])


def test_patience_is_a_training_setting_and_old_configs_still_load(tmp_path):
    assert load_config("demo", ["train.patience=3"]).train.patience == 3
    old = tmp_path / "old_run_config.yaml"
    old.write_text("eval:\n  early_stopping: true\n  patience: 2\n")
    cfg = load_config(old)
    assert cfg.train.patience == 2 and cfg.eval.early_stopping


def test_departures_from_the_papers_method_are_listed():
    assert departures_from_paper(load_config("paper")) == []
    small = departures_from_paper(load_config("cpu-small"))
    for line in (
        "loss.alpha 0.5 (paper 0.1)",
        "loss.same_class_negatives false (paper true)",
        "train.lr 0.001 (paper 5e-05)",
        "train.schedule cosine (paper constant)",
        "model.patch_size 8 (paper backbone default)",
        "model.depth 4 (paper backbone default)",
        "model.pretrained none (paper timm)",
    ):
        assert line in small
    # where and how reproducibly a run executes is not the method
    same = load_config("paper", ["seed=3", "device=cpu", "train.num_workers=2", "eval.protocol=kfold"])
    assert departures_from_paper(same) == []
    assert departures_from_paper(load_config("paper", ["loss.tau=0.2"])) == ["loss.tau 0.2 (paper 0.1)"]
