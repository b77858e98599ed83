"""The ViT backbone: msmmt's block against timm's, patch-weighting variants, multi-scale
(packed) passes, local weights."""

import re
import tomllib
from pathlib import Path

import pytest
import timm
import torch
from packaging.specifiers import SpecifierSet
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from msmmt.model.backbone import ViTBackbone, create_vit
from msmmt.model.blocks import block_forward
from msmmt.model.patch_weighting import VARIANTS, logit_bias, patch_weights

TINY = dict(embed_dim=32, depth=3, num_heads=2)


def tiny_vit(img_size=32, patch_size=8, **kw):
    torch.manual_seed(0)
    return create_vit("vit_tiny_patch16_224", img_size=img_size, patch_size=patch_size, **{**TINY, **kw})


def featureful_vit():
    """A timm ViT using every part msmmt's block reads: layer scale, qk-norm, the
    attention output norm (timm >= 1.0.16), random biases."""
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=0, embed_dim=32, depth=3,
        num_heads=2, qk_norm=True, scale_attn_norm=True, init_values=0.5,
        dynamic_img_size=True, dynamic_img_pad=True,
    )
    with torch.no_grad():
        for name, param in vit.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ls" in name:
                param.add_(0.1 * torch.randn_like(param))
    return vit.eval()


def test_installed_timm_is_in_the_pinned_range():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["dependencies"] if re.match(r"timm\b", d))
    assert SpecifierSet(spec[len("timm"):]).contains(timm.__version__), (spec, timm.__version__)


@pytest.mark.parametrize("fused", [True, False])
def test_block_equals_timms_block(fused):
    """msmmt's block is timm's ``Block.forward`` for the installed timm: every block, one
    span, two packed spans (each equal to its own pass), class tokens only."""
    vit = featureful_vit()
    torch.manual_seed(1)
    x = torch.randn(2, 17, 32)
    y = torch.randn(2, 5, 32)
    with torch.no_grad():
        for block in vit.blocks:
            want_x, want_y = block(x), block(y)
            got, probs = block_forward(block, x, [(0, 17)], fused=fused)
            assert probs is None
            assert torch.allclose(got, want_x, atol=1e-5)
            packed, probs = block_forward(block, torch.cat([x, y], 1), [(0, 17), (17, 22)],
                                          need_probs=True, fused=fused)
            assert torch.allclose(packed, torch.cat([want_x, want_y], 1), atol=1e-5)
            assert [p.shape for p in probs] == [(2, 17, 17), (2, 5, 5)]
            assert torch.allclose(probs[1].sum(-1), torch.ones(2, 5))
            cls, _ = block_forward(block, torch.cat([x, y], 1), [(0, 17), (17, 22)],
                                   cls_only=True, fused=fused)
            assert torch.allclose(cls, torch.stack([want_x[:, 0], want_y[:, 0]], 1), atol=1e-5)


def _last_block_reference(block, x, g, variant):
    """The last block's class token written out from timm's parameters, one sequence."""
    attn = block.attn
    scale = torch.cat([torch.ones_like(g[:, :1]), g[:, 1:]], 1)
    if variant == "paper":
        x = x * scale[..., None]
    h = block.norm1(x)
    w, b = attn.qkv.weight, attn.qkv.bias
    d = w.shape[1]
    h_kv = h * scale[..., None] if variant == "post-norm" else h
    heads = attn.num_heads

    def split(t):
        return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

    q = attn.q_norm(split(h[:, :1] @ w[:d].T + b[:d]))
    k = attn.k_norm(split(h_kv @ w[d : 2 * d].T + b[d : 2 * d]))
    v = split(h_kv @ w[2 * d :].T + b[2 * d :])
    logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if variant == "attention":
        logits = logits + scale.log()[:, None, None, :]
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(x.shape[0], 1, -1)
    y = x[:, :1] + block.ls1(attn.proj(attn.norm(out)))
    return y + block.ls2(block.mlp(block.norm2(y)))


def _reference(vit, backbone, image):
    """Plain re-computation with timm's own blocks (its fused kernel included).

    Returns the head-mean attention of the first L-1 blocks, computed from each
    block's qkv weights as softmax(q k^T * scale), and the class token of eqs 12-16
    with the backbone's variant.
    """
    x = vit.patch_embed((image - backbone.mean) / backbone.std)
    x = vit.norm_pre(vit._pos_embed(x))
    attentions = []
    for block in vit.blocks[:-1]:
        h = block.norm1(x)
        qkv = h @ block.attn.qkv.weight.T + block.attn.qkv.bias
        B, N, _ = qkv.shape
        heads = block.attn.num_heads
        q, k, _ = qkv.reshape(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
        attentions.append(scores.softmax(-1).mean(1))
        x = block(x)
    if backbone.patch_weighting == "none":
        x = vit.blocks[-1](x)[:, :1]
    else:
        g = patch_weights(attentions, residual=backbone.rollout_residual)
        x = _last_block_reference(vit.blocks[-1], x, g, backbone.patch_weighting)
    return attentions, vit.norm(x)[:, 0]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("residual", [False, True])
def test_reported_attention_and_feature_match_plain_recomputation(variant, residual):
    vit = tiny_vit().eval()
    backbone = ViTBackbone(vit, patch_weighting=variant, rollout_residual=residual).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = backbone([image])[0]
        ref_attn, ref_feature = _reference(vit, backbone, image)
    assert torch.allclose(out.feature, ref_feature, atol=1e-5)
    if variant == "none":
        assert out.weights is None and out.attentions is None
        return
    assert len(out.attentions) == len(vit.blocks) - 1
    for got, want in zip(out.attentions, ref_attn, strict=True):
        assert got.shape == (2, 17, 17)
        assert torch.allclose(got, want, atol=1e-5)
    g = patch_weights(ref_attn, residual=residual)
    assert torch.allclose(out.weights, g[:, 1:].reshape(2, 4, 4), atol=1e-5)


@pytest.mark.parametrize("vit_fn", [tiny_vit, featureful_vit])
def test_without_patch_weighting_the_feature_is_timms_class_token(vit_fn):
    vit = vit_fn().eval()
    image = torch.rand(3, 3, 32, 32)
    for fused in (True, False):
        backbone = ViTBackbone(vit, patch_weighting="none", fused_attn=fused).eval()
        with torch.no_grad():
            out = backbone([image])[0]
            want = vit.forward_features((image - backbone.mean) / backbone.std)[:, 0]
        assert out.weights is None and out.attentions is None
        assert torch.allclose(out.feature, want, atol=1e-5)


def _features_with_weights(monkeypatch, vit, variant, image, make_g):
    """The class-token feature when the rollout's weights are replaced by ``make_g(shape)``."""
    def fake(attentions, residual=False):
        B, N, _ = attentions[0].shape
        return make_g((B, N))

    monkeypatch.setattr("msmmt.model.backbone.patch_weights", fake)
    with torch.no_grad():
        return ViTBackbone(vit, patch_weighting=variant).eval()([image])[0].feature


def _random_g(shape):
    return torch.empty(shape).uniform_(0.05, 1.0, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("vit_fn", [tiny_vit, featureful_vit])
def test_paper_weighting_is_inert_because_layernorm_removes_the_scale(monkeypatch, vit_fn):
    """Eq 15 literally is inert (the documented finding): with the rollout's own g the
    feature equals the plain ViT's; with random g in [0.05, 1] it differs only through
    LayerNorm's eps, LN(g x) = (g x - g mu) / sqrt(g^2 var + eps): with eps -> 0 the
    difference vanishes too."""
    vit, image = vit_fn().eval(), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain = ViTBackbone(vit, patch_weighting="none").eval()([image])[0].feature
        paper = ViTBackbone(vit, patch_weighting="paper").eval()([image])[0].feature
    assert (paper - plain).abs().max() < 1e-5
    vit.blocks[-1].norm1.eps = 1e-20
    plain = _features_with_weights(monkeypatch, vit, "none", image, torch.ones)
    paper = _features_with_weights(monkeypatch, vit, "paper", image, _random_g)
    assert (paper - plain).abs().max() < 1e-5


@pytest.mark.parametrize("variant", ["post-norm", "attention"])
def test_effective_weighting_changes_the_feature_and_g_one_is_plain(monkeypatch, variant):
    vit, image = tiny_vit().eval(), torch.rand(2, 3, 32, 32)
    plain = _features_with_weights(monkeypatch, vit, "none", image, torch.ones)
    ones = _features_with_weights(monkeypatch, vit, variant, image, torch.ones)
    weighted = _features_with_weights(monkeypatch, vit, variant, image, _random_g)
    assert (ones - plain).abs().max() < 1e-5
    assert (weighted - plain).abs().max() > 1e-2


@pytest.mark.parametrize("fused", [True, False])
def test_attention_weighting_with_zero_weight_removes_the_patch(fused):
    """g_j = 0 in the ``attention`` variant: the class token's output no longer depends
    on token j (its content replaced gives the same output); with g_j = 1 it does."""
    block = featureful_vit().blocks[-1]
    torch.manual_seed(2)
    x = torch.randn(2, 17, 32)
    other = x.clone()
    other[:, 5] = torch.randn(2, 32) * 3
    g = torch.rand(2, 17) * 0.9 + 0.1
    cut = g.clone()
    cut[:, 5] = 0.0
    def cls(tokens, weights):
        with torch.no_grad():
            return block_forward(block, tokens, [(0, 17)], cls_only=True, fused=fused,
                                 bias=logit_bias(weights))[0]

    assert torch.allclose(cls(x, cut), cls(other, cut), atol=1e-6)
    assert (cls(x, g) - cls(other, g)).abs().max() > 1e-3
    assert torch.isfinite(logit_bias(cut)).all()


@pytest.mark.parametrize(
    ("img_size", "patch", "grids"),
    [(224, 16, [14, 7, 4]), (48, 8, [6, 3, 2])],  # 56 / 16 and 12 / 8 need padding
)
@pytest.mark.parametrize("variant", ["paper", "post-norm", "attention"])
def test_three_scales_packed_equal_separate_and_reference(img_size, patch, grids, variant):
    vit = tiny_vit(img_size=img_size, patch_size=patch, depth=2).eval()
    images = [torch.rand(2, 3, img_size // s, img_size // s) for s in (1, 2, 4)]
    packed = ViTBackbone(vit, patch_weighting=variant, pack_scales=True).eval()
    separate = ViTBackbone(
        vit, patch_weighting=variant, pack_scales=False, last_block_cls_only=False, fused_attn=False
    ).eval()
    with torch.no_grad():
        out_p, out_s = packed(images), separate(images)
        refs = [_reference(vit, packed, image) for image in images]
    for p, s, (ref_attn, ref_feature), grid in zip(out_p, out_s, refs, grids, strict=True):
        assert p.feature.shape == (2, 32)
        assert p.weights.shape == (2, grid, grid)
        assert torch.allclose(p.feature, s.feature, atol=1e-5)
        assert torch.allclose(p.weights, s.weights, atol=1e-5)
        assert torch.allclose(p.feature, ref_feature, atol=1e-5)
        assert torch.allclose(p.attentions[0], ref_attn[0], atol=1e-5)


@pytest.mark.parametrize("detach", [False, True])
def test_gradients_through_weights_only_when_not_detached(detach):
    vit = tiny_vit()
    backbone = ViTBackbone(vit, patch_weighting="attention", detach_weights=detach)
    out = backbone([torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16)])
    weights = torch.cat([o.weights.flatten(1) for o in out], dim=1)
    if detach:
        assert not weights.requires_grad
    else:
        (weights * torch.randn_like(weights)).sum().backward()
        grad = vit.blocks[0].attn.qkv.weight.grad
        assert grad is not None and grad.abs().sum() > 0
    # the feature always trains every block (a random projection: the sum of a
    # layer-normed vector is constant)
    vit.zero_grad()
    feature = backbone([torch.rand(2, 3, 32, 32)])[0].feature
    (feature * torch.randn_like(feature)).sum().backward()
    assert vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_local_checkpoint_loads_without_download(tmp_path):
    source = tiny_vit()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / "tiny.safetensors"
    save_file(state, str(path))
    torch.save(state, tmp_path / "tiny.pth")
    for file in (path, tmp_path / "tiny.pth"):
        torch.manual_seed(123)  # a different random init, overwritten by the file
        loaded = create_vit(
            "vit_tiny_patch16_224", pretrained=str(file), img_size=32, patch_size=8, **TINY
        )
        got = loaded.state_dict()
        assert got.keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(got[key], value), key


def test_local_checkpoint_pos_embed_resampled_to_new_grid(tmp_path):
    source = tiny_vit(img_size=32)  # 4x4 grid
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_vit("vit_tiny_patch16_224", pretrained=str(path), img_size=48, patch_size=8, **TINY)
    assert loaded.pos_embed.shape == (1, 1 + 36, 32)
    want = resample_abs_pos_embed(source.pos_embed, new_size=(6, 6), old_size=(4, 4))
    assert torch.allclose(loaded.pos_embed, want)
    assert torch.equal(loaded.blocks[1].mlp.fc1.weight, source.blocks[1].mlp.fc1.weight)


def test_bad_weight_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_vit("vit_tiny_patch16_224", pretrained=str(missing), img_size=32, patch_size=8, **TINY)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        create_vit("vit_tiny_patch16_224", pretrained=str(corrupt), img_size=32, patch_size=8, **TINY)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"something.else": torch.zeros(3)}, str(wrong))
    with pytest.raises(ValueError, match="wrong.safetensors.*do not fit"):
        create_vit("vit_tiny_patch16_224", pretrained=str(wrong), img_size=32, patch_size=8, **TINY)


def test_hub_weights_offline_or_unfit_are_clear_errors(monkeypatch, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from msmmt.config import ConfigError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("outgoing traffic has been disabled")

    monkeypatch.setattr("timm.models._hub.hf_hub_download", offline)
    with pytest.raises(ConfigError) as err:
        create_vit("vit_tiny_patch16_224", pretrained="timm", img_size=32, patch_size=8, **TINY)
    text = str(err.value)
    assert text.startswith("model.pretrained timm: could not fetch the ImageNet weights")
    assert "no network and not in the local cache" in text and "local safetensors" in text
    # weights the hub does give: loaded when they fit the architecture, refused when not
    source = tiny_vit()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    monkeypatch.setattr("timm.models._hub.hf_hub_download", lambda *args, **kwargs: str(path))
    torch.manual_seed(123)
    loaded = create_vit("vit_tiny_patch16_224", pretrained="timm", img_size=32, patch_size=8, **TINY)
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    with pytest.raises(ValueError, match="its hub weights do not fit the architecture"):
        create_vit("vit_tiny_patch16_224", pretrained="timm", img_size=32, patch_size=8,
                   embed_dim=64, depth=3, num_heads=2)


def test_unsupported_backbones_are_refused():
    with pytest.raises(ValueError, match="not a timm model"):
        create_vit("no_such_vit")
    with pytest.raises(ValueError, match="class token"):
        create_vit("vit_medium_patch16_reg4_gap_256", img_size=32, patch_size=8, **TINY)
