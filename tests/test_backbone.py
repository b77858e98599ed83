"""The ViT backbone: explicit attention, multi-scale (packed) passes, local weights."""

import pytest
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from msmmt.model.backbone import ViTBackbone, create_vit
from msmmt.model.patch_weighting import patch_weights, weight_tokens

TINY = dict(embed_dim=32, depth=3, num_heads=2)


def tiny_vit(img_size=32, patch_size=8, **kw):
    torch.manual_seed(0)
    return create_vit("vit_tiny_patch16_224", img_size=img_size, patch_size=patch_size, **{**TINY, **kw})


def _reference(vit, backbone, image):
    """Plain, unfused re-computation with timm's own blocks (its fused kernel included).

    Returns the head-mean attention of the first L-1 blocks, computed from each
    block's qkv weights as softmax(q k^T * scale), and the class token of eqs 12-16.
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
    if backbone.patch_weighting:
        x = weight_tokens(x, patch_weights(attentions, residual=backbone.rollout_residual))
    x = vit.norm(vit.blocks[-1](x))
    return attentions, x[:, 0]


@pytest.mark.parametrize("residual", [False, True])
def test_reported_attention_and_feature_match_plain_recomputation(residual):
    vit = tiny_vit().eval()
    backbone = ViTBackbone(vit, rollout_residual=residual).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = backbone([image])[0]
        ref_attn, ref_feature = _reference(vit, backbone, image)
    assert len(out.attentions) == len(vit.blocks) - 1
    for got, want in zip(out.attentions, ref_attn, strict=True):
        assert got.shape == (2, 17, 17)
        assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(out.feature, ref_feature, atol=1e-5)
    g = patch_weights(ref_attn, residual=residual)
    assert torch.allclose(out.weights, g[:, 1:].reshape(2, 4, 4), atol=1e-5)


def test_without_patch_weighting_the_feature_is_timms_class_token():
    vit = tiny_vit().eval()
    image = torch.rand(3, 3, 32, 32)
    for fused in (True, False):
        backbone = ViTBackbone(vit, patch_weighting=False, fused_attn=fused).eval()
        with torch.no_grad():
            out = backbone([image])[0]
            want = vit.forward_features((image - backbone.mean) / backbone.std)[:, 0]
        assert out.weights is None and out.attentions is None
        assert torch.allclose(out.feature, want, atol=1e-5)


@pytest.mark.parametrize(
    ("img_size", "patch", "grids"),
    [(224, 16, [14, 7, 4]), (48, 8, [6, 3, 2])],  # 56 / 16 and 12 / 8 need padding
)
def test_three_scales_packed_equal_separate_and_reference(img_size, patch, grids):
    vit = tiny_vit(img_size=img_size, patch_size=patch, depth=2).eval()
    images = [torch.rand(2, 3, img_size // s, img_size // s) for s in (1, 2, 4)]
    packed = ViTBackbone(vit, pack_scales=True).eval()
    separate = ViTBackbone(vit, pack_scales=False, last_block_cls_only=False).eval()
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
    backbone = ViTBackbone(vit, detach_weights=detach)
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


def test_unsupported_backbones_are_refused():
    with pytest.raises(ValueError, match="not a timm model"):
        create_vit("no_such_vit")
    with pytest.raises(ValueError, match="class token"):
        create_vit("vit_medium_patch16_reg4_gap_256", img_size=32, patch_size=8, **TINY)
