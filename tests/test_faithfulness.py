"""Faithfulness measures of the patch weights: moving region, pointing game, deletion."""

import torch

from msmmt.config import ModelConfig
from msmmt.inference.faithfulness import (
    deletion_drops,
    mask_patches,
    moving_region,
    patch_means,
    pointing_hits,
)
from msmmt.model import build_model


def test_patch_means_average_only_the_pixels_inside_the_image():
    # 10 x 10 image whose value is its column; 4 px patches: a 3 x 3 grid whose last
    # column of cells holds columns 8, 9 only (mean 8.5), the others 0..3 and 4..7.
    image = torch.arange(10.0).repeat(10, 1)[None]
    means = patch_means(image, 10, 4)
    assert means.shape == (1, 3, 3)
    assert torch.allclose(means[0, 0], torch.tensor([1.5, 5.5, 8.5]))
    assert torch.allclose(means[0, :, 2], torch.full((3,), 8.5))


def test_moving_region_is_where_the_strain_is():
    motion = torch.zeros(2, 3, 32, 32)
    motion[0, 2, 8:16, 16:24] = 1.0  # patch (1, 2) of a 4 x 4 grid of 8 px patches
    motion[1, 2, 24:, :8] = 1.0  # patch (3, 0)
    blocks = moving_region(motion, 32, 1, 8, fraction=1 / 16)
    assert blocks.shape == (2, 4, 4)
    assert blocks[0, 1, 2] and blocks[1, 3, 0] and blocks.sum() == 2
    ramp = torch.zeros(1, 3, 32, 32)
    ramp[0, 2] = torch.linspace(0, 1, 32)[:, None] + torch.linspace(0, 0.1, 32)  # down, right
    region = moving_region(ramp, 32, 1, 8, fraction=0.25)[0]
    assert region[3].all() and region.sum() == 4  # the bottom row of patches
    # at scale 2 the 16 px image is one 2 x 2 grid of 8 px patches: the bottom right one
    assert moving_region(ramp, 32, 2, 8, fraction=0.25)[0].tolist() == [[False, False], [False, True]]
    weights = torch.rand(2, 4, 4)
    weights[0, 1, 2] = 2.0  # the top patch of clip 0 moved, that of clip 1 did not
    weights[1, 0, 0] = 2.0
    assert pointing_hits(weights, blocks).tolist() == [True, False]


def test_mask_patches_fills_only_the_listed_patches_with_the_median():
    torch.manual_seed(0)
    image = torch.rand(3, 10, 10)
    out = mask_patches(image, torch.tensor([0, 8]), 4)  # top left; bottom right (2 x 2 px)
    median = image.flatten(1).median(dim=1).values
    assert torch.equal(out[:, :4, :4], median[:, None, None].expand(3, 4, 4))
    assert torch.equal(out[:, 8:, 8:], median[:, None, None].expand(3, 2, 2))
    keep = torch.ones(10, 10, dtype=torch.bool)
    keep[:4, :4] = keep[8:, 8:] = False
    assert torch.equal(out[:, keep], image[:, keep])


def test_deletion_of_every_patch_is_the_same_for_top_and_random():
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=16,
                      depth=2, num_heads=2, scales=[1, 2], fusion_hidden=8, proj_dim=4)
    model = build_model(cfg).eval()
    images = {m: torch.rand(3, 3, 16, 16) for m in ("texture", "motion")}
    top, rand = deletion_drops(model, images, ks=[1, 16], n_random=3)
    assert top.shape == rand.shape == (3, 2)
    assert abs(top[:, 1] - rand[:, 1]).max() < 1e-6  # all 16 patches masked either way
    assert abs(top[:, 0] - rand[:, 0]).max() > 0  # one patch: which one matters
