"""The MSMMT network end to end on CPU: shapes, ablations, determinism, checkpoints."""

import json

import pytest
import timm
import torch

from msmmt.config import Config, LossConfig, ModelConfig, load_config
from msmmt.model import MSMMT, MSMMTOutput, build_model
from msmmt.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from msmmt.model.losses import msmmt_loss

TINY = dict(
    backbone="vit_tiny_patch16_224",
    img_size=32,
    patch_size=4,
    embed_dim=32,
    depth=2,
    num_heads=2,
    fusion_hidden=16,
    proj_dim=8,
    num_classes=3,
    dropout=0.1,
)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def build(seed=0, **kw) -> MSMMT:
    torch.manual_seed(seed)
    return build_model(tiny(**kw))


def inputs(batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    # any sizes: a non-square texture image and a 28x28 flow image as in the public release
    return torch.rand(batch, 3, 40, 50, generator=g), torch.rand(batch, 3, 28, 28, generator=g)


def test_forward_backward_shapes():
    model = build()
    texture, motion = inputs()
    out = model(texture, motion)
    assert isinstance(out, MSMMTOutput)
    assert out.logits.shape == (4, 3)
    assert out.z_texture.shape == (4, 8) and out.z_motion.shape == (4, 8)
    grids = {1: 8, 2: 4, 4: 2}  # 32, 16 and 8 pixels in 4x4 patches
    assert set(out.patch_weights) == {f"{m}@{s}" for m in ("texture", "motion") for s in (1, 2, 4)}
    for key, w in out.patch_weights.items():
        g = grids[int(key.split("@")[1])]
        assert w.shape == (4, g, g)
        assert (w >= 0).all() and (w <= 1 + 1e-6).all()
    loss, parts = msmmt_loss(out, torch.tensor([0, 1, 2, 0]), LossConfig(alpha=0.5))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name


def test_batch_of_one_trains():
    model = build().train()
    texture, motion = inputs(batch=1)
    out = model(texture, motion)
    assert out.logits.shape == (1, 3)
    loss, _ = msmmt_loss(out, torch.tensor([2]), LossConfig())
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    ("change", "backbones", "keys"),
    [
        (dict(modalities=["texture"]), 1, {"texture@1", "texture@2", "texture@4"}),
        (dict(modalities=["motion"], scales=[2]), 1, {"motion@2"}),
        (dict(scales=[1, 4]), 2, {"texture@1", "texture@4", "motion@1", "motion@4"}),
        (dict(patch_weighting="none"), 2, set()),
        (dict(patch_weighting="paper"), 2, None),
        (dict(patch_weighting="post-norm"), 2, None),
        (dict(share_backbone="all"), 1, None),
        (dict(share_backbone="scale"), 6, None),
        (dict(rollout_residual=True, detach_weights=False), 2, None),
    ],
)
def test_ablation_switches(change, backbones, keys):
    model = build(**change)
    assert len(model.backbones) == backbones
    texture, motion = inputs()
    two = len(model.modalities) == 2
    out = model(
        texture if "texture" in model.modalities else None,
        motion if "motion" in model.modalities else None,
    )
    assert out.logits.shape == (4, 3)
    assert (out.z_texture is not None) == two and (out.z_motion is not None) == two
    if keys is not None:
        assert set(out.patch_weights) == keys
    loss, parts = msmmt_loss(out, torch.tensor([0, 1, 2, 0]), LossConfig(alpha=0.1))
    loss.backward()
    assert (parts["con"] > 0) == two


def test_old_boolean_patch_weighting_maps_to_the_variants():
    assert tiny(patch_weighting=False).patch_weighting == "none"
    assert tiny(patch_weighting=True).patch_weighting == ModelConfig().patch_weighting
    assert load_config("demo", ["model.patch_weighting=false"]).model.patch_weighting == "none"
    with pytest.raises(ValueError, match="patch_weighting"):
        tiny(patch_weighting="sometimes")


def test_paper_variant_gives_the_logits_of_a_plain_vit_and_the_others_do_not():
    """The same weights under each variant: eq 15 literally (``paper``) changes no logit
    (LayerNorm removes the per-token scale), the effective variants do."""
    texture, motion = inputs()
    logits = {}
    for variant in ("none", "paper", "post-norm", "attention"):
        model = build(patch_weighting=variant).eval()
        with torch.no_grad():
            logits[variant] = model(texture, motion).logits
    assert (logits["paper"] - logits["none"]).abs().max() < 1e-5
    for variant in ("post-norm", "attention"):
        assert (logits[variant] - logits["none"]).abs().max() > 1e-5


def test_forward_features_and_head_split():
    model = build().eval()
    texture, motion = inputs()
    with torch.no_grad():
        features = model.forward_features({"texture": texture, "motion": motion})
        in_order = model.forward_features([texture, motion])
        out = model.forward_head(features)
        whole = model(texture, motion)
    assert set(features.modalities) == {"texture", "motion"}
    assert features.modalities["motion"].shape == (4, 3 * 32)  # scales x D
    assert torch.equal(features.modalities["texture"], in_order.modalities["texture"])
    assert torch.equal(out.logits, whole.logits) and torch.equal(out.z_motion, whole.z_motion)
    assert set(out.patch_weights) == set(features.patch_weights)
    with pytest.raises(ValueError, match="expected 2 images"):
        model.forward_features([texture])
    motion_only = build(modalities=["motion"]).eval()
    with torch.no_grad():
        alone = motion_only.forward_features([motion])
    assert set(alone.modalities) == {"motion"}


def test_contrastive_off_is_cross_entropy():
    model = build()
    out = model(*inputs())
    labels = torch.tensor([0, 1, 2, 0])
    total, _ = msmmt_loss(out, labels, LossConfig(alpha=1.0))
    assert torch.allclose(total, torch.nn.functional.cross_entropy(out.logits, labels))


def test_feature_width_follows_scales_and_modalities():
    model = build(scales=[1, 2])
    assert model.classifier[0].in_features == 2 * 2 * 32  # modalities x scales x D
    assert model.projections["texture"][0].in_features == 2 * 32


@pytest.mark.parametrize(
    "execution",
    [
        dict(pack_scales=False),
        dict(fused_attn=False),
        dict(last_block_cls_only=False),
        dict(pack_scales=False, fused_attn=False, last_block_cls_only=False),
    ],
)
def test_execution_choices_give_the_same_result(execution):
    default = build().train()
    other = build().train()
    other.set_execution(**execution)
    labels = torch.tensor([0, 1, 2, 0])
    results = []
    for model in (default, other):
        torch.manual_seed(5)  # the same dropout mask
        out = model(*inputs())
        loss, _ = msmmt_loss(out, labels, LossConfig(alpha=0.5))
        loss.backward()
        grad = model.backbones["texture"].vit.blocks[0].attn.qkv.weight.grad
        results.append((out, grad))
    (a, grad_a), (b, grad_b) = results
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    assert torch.allclose(grad_a, grad_b, atol=1e-5)
    for key in a.patch_weights:
        assert torch.allclose(a.patch_weights[key], b.patch_weights[key], atol=1e-5)


def test_share_all_runs_modalities_through_one_backbone():
    """With one shared backbone, texture@s equals running the texture alone."""
    model = build(share_backbone="all").eval()
    texture_only = build(share_backbone="all", modalities=["texture"]).eval()
    texture_only.backbones.load_state_dict(model.backbones.state_dict())
    texture, motion = inputs()
    with torch.no_grad():
        both, alone = model(texture, motion), texture_only(texture, None)
    for s in (1, 2, 4):
        key = f"texture@{s}"
        assert torch.allclose(both.patch_weights[key], alone.patch_weights[key], atol=1e-5)


def test_deterministic_with_seed():
    texture, motion = inputs()
    outs = []
    for _ in range(2):
        model = build(seed=7).eval()
        with torch.no_grad():
            outs.append(model(texture, motion).logits)
    assert torch.equal(outs[0], outs[1])
    other = build(seed=8).eval()
    with torch.no_grad():
        assert not torch.allclose(other(texture, motion).logits, outs[0])


def test_bad_inputs_are_refused():
    model = build()
    texture, motion = inputs()
    with pytest.raises(ValueError, match="no motion input"):
        model(texture, None)
    with pytest.raises(ValueError, match=r"texture input must be .*\(B, 3, H, W\)"):
        model(texture[:, :1], motion)
    with pytest.raises(ValueError, match="batches differ"):
        model(texture, motion[:2])
    with pytest.raises(ValueError, match="single 4x4 patch"):
        build(scales=[1, 8])


@pytest.mark.parametrize("share,stem", [("modality", "patch"), ("all", "patch"), ("modality", "conv")])
def test_checkpoint_round_trip(tmp_path, share, stem):
    config = Config(model=tiny(share_backbone=share, stem=stem))
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    save_checkpoint(model, config, tmp_path / "ckpt", extra={"classes": ["a", "b", "c"]})
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "model.safetensors", "config.json", "extra.json"
    }
    torch.manual_seed(99)  # a different init, replaced by the file's weights
    loaded, loaded_config, extra = load_checkpoint(tmp_path / "ckpt")
    assert loaded_config == config
    assert extra == {"classes": ["a", "b", "c"]}
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(model(*inputs()).logits, loaded(*inputs()).logits)


def test_checkpoint_never_downloads(tmp_path):
    config = Config(model=tiny(pretrained="timm"))  # would download if honoured
    model = build_model(tiny())
    save_checkpoint(model, config, tmp_path)
    loaded, loaded_config, extra = load_checkpoint(tmp_path)
    assert loaded_config.model.pretrained == "timm" and extra == {}
    assert torch.equal(loaded.classifier[0].weight, model.classifier[0].weight)


def test_missing_or_corrupt_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.*config.json"):
        load_checkpoint(tmp_path / "nowhere")
    config = Config(model=tiny())
    save_checkpoint(build_model(config.model), config, tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(tmp_path / "c")
    save_checkpoint(build_model(config.model), config, tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path / "d")
    # weights of another architecture
    save_checkpoint(build_model(config.model), config, tmp_path / "e")
    other = config.model_dump(mode="json")
    other["model"]["embed_dim"] = 64
    (tmp_path / "e" / "config.json").write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "e")


def test_paper_config_parameter_count():
    """Two ViT-B/16 backbones plus the fusion and projection heads."""
    cfg = load_config("paper").model.model_copy(update={"pretrained": None})
    with torch.device("meta"):
        model = build_model(cfg)
        vit_b = timm.create_model("vit_base_patch16_224", num_classes=0)
    vit_params = sum(p.numel() for p in vit_b.parameters())
    feature = 3 * 768  # three scales' class tokens
    fusion = (2 * feature * 512 + 512) + (512 * 3 + 3)
    projection = (feature * 512 + 512) + (512 * 128 + 128)
    expected = 2 * vit_params + fusion + 2 * projection
    assert sum(p.numel() for p in model.parameters()) == expected
    assert len(model.backbones) == 2


# --- convolutional stem ------------------------------------------------------------------


def test_conv_stem_keeps_the_patch_grid_and_the_token_sees_its_neighbours():
    """Same grid as the p x p patch embedding at every input size (28 px is padded to 32),
    but a token's receptive field reaches past its patch: the last pixel of patch (0, 0)
    changes token (0, 1) too with the stem (stride-2 3x3 convolutions: token j sees pixels
    4j - 3 .. 4j + 3 for p = 4), and only token (0, 0) with the patch embedding."""
    for stem in ("patch", "conv"):
        vit = build(stem=stem).backbones["motion"].vit
        for size, grid in ((32, 8), (16, 4), (28, 7)):
            tokens = vit.patch_embed(torch.rand(2, 3, size, size))
            assert tokens.shape[1:3] == (grid, grid), (stem, size)
        image = torch.rand(1, 3, 32, 32)
        moved = image.clone()
        moved[..., 1, 3] += 1.0  # column 3: the last pixel of patch (0, 0) (p = 4)
        with torch.no_grad():
            delta = (vit.patch_embed(moved) - vit.patch_embed(image)).abs()[0]
        assert delta[0, 0].max() > 1e-4  # its own patch's token changes either way
        assert (delta[0, 1].max() > 1e-4) == (stem == "conv"), stem


def test_conv_stem_layers_follow_the_patch_size():
    stem = build(stem="conv", patch_size=8, img_size=64).backbones["motion"].vit.patch_embed.proj
    convs = [m for m in stem if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1]  # log2(8) halvings, then 1x1
    assert [c.out_channels for c in convs] == [8, 16, 32, 32]  # D/4, D/2, D, D (D = 32)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"patch_size": 6}, "power-of-2 patch_size"),
        ({"pretrained": "weights.safetensors"}, "no pretrained weights"),
    ],
)
def test_conv_stem_settings_that_cannot_work_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        tiny(stem="conv", **change)
