"""Paired augmentation: the same geometric transform on both images, flips negate u."""

import math

import numpy as np
import pytest
import torch

from msmmt.config import AugmentConfig
from msmmt.engine.augment import (
    ELASTIC_POINTS,
    AugmentParams,
    apply_pair,
    elastic_field,
    erase_box,
    mix_batch,
    random_params,
    warp,
)


def _rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _marker(h, w, row, col):
    img = torch.zeros(3, h, w)
    img[:, row, col] = 1.0
    return img


def _centroid(channel: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted (row, col) centre of a 2-D map."""
    ch = channel.double()
    rows, cols = torch.meshgrid(
        torch.arange(ch.shape[0], dtype=torch.float64),
        torch.arange(ch.shape[1], dtype=torch.float64),
        indexing="ij",
    )
    total = ch.sum()
    return float((rows * ch).sum() / total), float((cols * ch).sum() / total)


def test_identity_parameters_leave_images_unchanged():
    tex, mot = _rand((3, 20, 28), 1), _rand((3, 20, 28), 2)
    t2, m2 = apply_pair(tex, mot, AugmentParams(angle=0.0, scale=1.0, flip=False))
    assert torch.allclose(t2, tex, atol=1e-5) and torch.allclose(m2, mot, atol=1e-5)


def test_quarter_turn_matches_rot90_counter_clockwise():
    img = _rand((3, 16, 16), 3)
    out = warp(img, AugmentParams(angle=90.0))
    assert torch.allclose(out, torch.rot90(img, 1, dims=(1, 2)), atol=1e-5)


def test_flip_without_rotation_mirrors_the_picture():
    img = _rand((3, 9, 12), 4)
    out = warp(img, AugmentParams(flip=True))
    assert torch.allclose(out, torch.flip(img, dims=(2,)), atol=1e-5)


@pytest.mark.parametrize(
    "angle,scale,flip,shift,h,w",
    [
        (30.0, 1.0, False, (0.0, 0.0), 41, 41),
        (-20.0, 1.5, True, (0.0, 0.0), 41, 41),
        (0.0, 2.0, False, (0.0, 0.0), 41, 41),
        (25.0, 1.2, True, (0.0, 0.0), 37, 53),  # non-square: normalised coordinates differ per axis
        (0.0, 1.0, False, (0.1, -0.2), 41, 41),  # a shift alone: 4.1 px right, 8.2 px up
        (25.0, 1.2, True, (-0.1, 0.05), 37, 53),  # a shift after turning, scaling and mirroring
    ],
)
def test_marker_lands_at_the_same_predicted_place_in_both_images(angle, scale, flip, shift, h, w):
    row, col = 14, 27
    tex, mot = _marker(h, w, row, col), _marker(h, w, row, col)
    t2, m2 = apply_pair(tex, mot, AugmentParams(angle=angle, scale=scale, flip=flip, shift=shift))
    # Predicted position: centred (x right, y down), scale, turn counter-clockwise on screen,
    # mirror, then shift by the given fractions of the width and height.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x, y = (col - cx) * scale, (row - cy) * scale
    a = math.radians(angle)
    x, y = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    if flip:
        x = -x
    x, y = x + shift[0] * w, y + shift[1] * h
    expected = (y + cy, x + cx)
    got_t = _centroid(t2[1])
    got_m = _centroid(m2[1])  # channel 1 (v) is not changed by the flip's sign rule
    assert got_t == pytest.approx(got_m, abs=1e-6)
    assert got_t == pytest.approx(expected, abs=0.1)


def test_flip_negates_u_of_an_antisymmetric_field():
    # u(x) = x about the centre (antisymmetric in x); v, strain arbitrary but even in x.
    h, w = 10, 15
    x = torch.linspace(-1, 1, w).expand(h, w)
    u = -x  # a field pointing to the left on the right side
    v = torch.rand(h, w, generator=torch.Generator().manual_seed(5))
    v = (v + torch.flip(v, dims=(1,))) / 2
    s = (u - u.min()) / (u.max() - u.min())
    motion = torch.stack([s, v, v.clone()])
    _, flipped = apply_pair(torch.zeros(3, h, w), motion, AugmentParams(flip=True))
    # Mirroring an antisymmetric u gives -u at the same pixel: its scaled image is 1 - s,
    # i.e. the mirrored flipped field equals the original scaled field's negation.
    neg = -u
    neg_scaled = (neg - neg.min()) / (neg.max() - neg.min())
    assert torch.allclose(flipped[0], torch.flip(neg_scaled, dims=(1,)), atol=1e-5)
    # antisymmetric u: mirror(-u) == u, so the flipped image's u equals the original
    assert torch.allclose(flipped[0], s, atol=1e-5)
    assert torch.allclose(flipped[1], v, atol=1e-5) and torch.allclose(flipped[2], v, atol=1e-5)


def test_flip_maps_a_generic_u_channel_to_one_minus_its_mirror():
    motion = _rand((3, 8, 11), 6)
    texture = _rand((3, 8, 11), 7)
    t2, m2 = apply_pair(texture, motion, AugmentParams(flip=True))
    mirror = torch.flip(motion, dims=(2,))
    assert torch.allclose(m2[0], 1.0 - mirror[0], atol=1e-5)
    assert torch.allclose(m2[1:], mirror[1:], atol=1e-5)
    assert torch.allclose(t2, torch.flip(texture, dims=(2,)), atol=1e-5)


def test_random_params_stay_in_range_and_follow_the_generator():
    cfg = AugmentConfig(rotation=10.0, flip=True, scale=(0.9, 1.1))
    draws = [random_params(cfg, torch.Generator().manual_seed(i)) for i in range(200)]
    angles = np.array([d.angle for d in draws])
    scales = np.array([d.scale for d in draws])
    flips = np.array([d.flip for d in draws])
    assert angles.min() >= -10 and angles.max() <= 10 and angles.min() < -8 and angles.max() > 8
    assert scales.min() >= 0.9 and scales.max() <= 1.1
    assert 0.3 < flips.mean() < 0.7
    again = random_params(cfg, torch.Generator().manual_seed(3))
    assert again == draws[3]
    no_flip = AugmentConfig(rotation=0.0, flip=False, scale=(1.0, 1.0))
    assert random_params(no_flip, torch.Generator().manual_seed(0)) == AugmentParams(
        0.0, 1.0, False
    )


# --- random erasing ---------------------------------------------------------------------


def test_erase_boxes_follow_the_stated_area_and_aspect_ranges():
    rng = np.random.default_rng(0)
    boxes = [erase_box(*rng.random(4)) for _ in range(2000)]
    h = np.array([b[1] - b[0] for b in boxes])
    w = np.array([b[3] - b[2] for b in boxes])
    assert min(b[0] for b in boxes) >= 0 and max(b[1] for b in boxes) <= 1 + 1e-12
    assert min(b[2] for b in boxes) >= 0 and max(b[3] for b in boxes) <= 1 + 1e-12
    unclipped = (h < 1) & (w < 1)
    area, aspect = (h * w)[unclipped], (h / w)[unclipped]
    assert area.min() >= 0.02 - 1e-12 and area.max() <= 1 / 3 + 1e-12
    assert abs(area.mean() - (0.02 + 1 / 3) / 2) < 0.01  # uniform area
    assert abs(np.log(aspect).mean()) < 0.05  # log-uniform aspect, symmetric about 1
    assert aspect.min() >= 0.3 - 1e-9 and aspect.max() <= 1 / 0.3 + 1e-9
    # hand check: area 0.25 and aspect 1 (u = 0.5 on the log scale) -> a 0.5 x 0.5 box
    u_area = (0.25 - 0.02) / (1 / 3 - 0.02)
    top, bottom, left, right = erase_box(u_area, 0.5, 1.0, 0.0)
    assert (top, bottom, left, right) == pytest.approx((0.5, 1.0, 0.0, 0.5))


def test_erasing_sets_the_same_box_of_both_images_to_their_channel_medians():
    texture, motion = _rand((3, 8, 10), 3), _rand((3, 8, 10), 4)
    box = (0.25, 0.75, 0.1, 0.5)  # rows 2..5, columns 1..4
    t2, m2 = apply_pair(texture, motion, AugmentParams(erase=box))
    for before, after in ((texture, t2), (motion, m2)):
        inside = torch.zeros(8, 10, dtype=torch.bool)
        inside[2:6, 1:5] = True
        for c in range(3):
            lower_median = float(np.sort(before[c].numpy().ravel())[39])  # 80 pixels: the 40th
            values = after[c][inside]
            assert torch.all(values == values[0])
            assert float(values[0]) == pytest.approx(lower_median, abs=1e-5)
        assert torch.allclose(after[:, ~inside], before[:, ~inside], atol=1e-5)  # identity warp


def test_erasing_draws_leave_the_other_draws_unchanged():
    base = AugmentConfig(rotation=10.0, flip=True, scale=(0.9, 1.1))
    with_erase = base.model_copy(update={"erase": 0.5})
    plain = [random_params(base, torch.Generator().manual_seed(i)) for i in range(200)]
    erased = [random_params(with_erase, torch.Generator().manual_seed(i)) for i in range(200)]
    for a, b in zip(plain, erased, strict=True):
        assert (a.angle, a.scale, a.flip) == (b.angle, b.scale, b.flip)
    assert all(a.erase is None for a in plain)
    assert 0.4 < np.mean([b.erase is not None for b in erased]) < 0.6


# --- elastic warp -----------------------------------------------------------------------


def _uniform_shift(dx_px: float, dy_px: float, h: int, w: int) -> tuple[float, ...]:
    k2 = ELASTIC_POINTS**2
    return (dx_px / w,) * k2 + (dy_px / h,) * k2


def test_a_constant_elastic_field_is_a_translation_by_it():
    img = _rand((3, 12, 16), 5)
    out = warp(img, AugmentParams(elastic=_uniform_shift(2.0, 1.0, 12, 16)))
    # output (x, y) reads input (x + 2, y + 1): compare where that stays inside the image
    assert torch.allclose(out[:, :-1, :-2], img[:, 1:, 2:], atol=1e-5)


def test_elastic_field_passes_through_its_control_points_in_pixels():
    rng = np.random.default_rng(0)
    d = tuple(rng.normal(0.0, 0.02, 2 * ELASTIC_POINTS**2))
    h, w = 31, 46  # (31 - 1) and (46 - 1) divisible by K - 1 = 3: control points on pixels
    field = elastic_field(d, h, w).numpy()
    k = ELASTIC_POINTS
    dx, dy = np.array(d[: k * k]).reshape(k, k), np.array(d[k * k:]).reshape(k, k)
    rows, cols = np.arange(k) * (h - 1) // (k - 1), np.arange(k) * (w - 1) // (k - 1)
    assert np.allclose(field[np.ix_(rows, cols)][..., 0], dx * w, atol=1e-9)
    assert np.allclose(field[np.ix_(rows, cols)][..., 1], dy * h, atol=1e-9)
    # smooth between them: neighbouring pixels differ by far less than the control values
    assert np.abs(np.diff(field, axis=1)).max() < 0.2 * np.abs(field).max()


def test_warp_moves_each_pixel_by_the_elastic_field():
    """Warp an image of its own coordinates: output(p) - p is the displacement read at p."""
    h = w = 64
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    coords = torch.stack([xs, ys, xs])
    params = random_params(AugmentConfig(rotation=0.0, flip=False, scale=(1.0, 1.0), elastic=0.02),
                           torch.Generator().manual_seed(7))
    moved = warp(coords, params) - coords
    field = elastic_field(params.elastic, h, w)
    inner = (slice(4, -4), slice(4, -4))  # away from the replicated border
    assert torch.allclose(moved[0][inner], field[..., 0][inner], atol=1e-6)
    assert torch.allclose(moved[1][inner], field[..., 1][inner], atol=1e-6)


def test_elastic_draws_have_the_stated_spread_and_leave_the_other_draws_unchanged():
    base = AugmentConfig(rotation=10.0, flip=True, scale=(0.9, 1.1), erase=0.5)
    bent = base.model_copy(update={"elastic": 0.03})
    plain = [random_params(base, torch.Generator().manual_seed(i)) for i in range(300)]
    drawn = [random_params(bent, torch.Generator().manual_seed(i)) for i in range(300)]
    for a, b in zip(plain, drawn, strict=True):
        assert (a.angle, a.scale, a.flip, a.erase) == (b.angle, b.scale, b.flip, b.erase)
    assert all(a.elastic is None for a in plain)
    values = np.array([b.elastic for b in drawn])
    assert values.shape == (300, 2 * ELASTIC_POINTS**2)
    assert abs(values.std() - 0.03) < 0.002 and abs(values.mean()) < 0.002


def test_elastic_warp_bends_both_images_of_a_clip_alike():
    img = _rand((3, 16, 16), 9)
    params = random_params(AugmentConfig(rotation=0.0, flip=False, scale=(1.0, 1.0), elastic=0.05),
                           torch.Generator().manual_seed(1))
    t2, m2 = apply_pair(img, img.clone(), params)
    assert torch.equal(t2, m2) and not torch.allclose(t2, img, atol=1e-3)


# --- mixup / CutMix ----------------------------------------------------------------------


def _batch(b=6, size=16):
    return _rand((b, 3, size, size), 1), _rand((b, 3, size, size), 2)


def test_mixing_off_returns_the_batch_unchanged():
    texture, motion = _batch()
    t, m, _, lam = mix_batch(texture, motion, AugmentConfig(), np.random.default_rng(0))
    assert lam == 1.0 and t is texture and m is motion


def test_mixup_is_the_same_convex_combination_in_both_modalities():
    texture, motion = _batch()
    cfg = AugmentConfig(mixup=0.4)
    t, m, perm, lam = mix_batch(texture, motion, cfg, np.random.default_rng(3))
    assert 0.0 < lam < 1.0 and sorted(perm.tolist()) == list(range(6))
    assert torch.allclose(t, lam * texture + (1 - lam) * texture[perm])
    assert torch.allclose(m, lam * motion + (1 - lam) * motion[perm])
    # lam follows Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    lams = [mix_batch(texture, motion, cfg, np.random.default_rng(s))[3] for s in range(2000)]
    assert np.mean(lams) == pytest.approx(0.5, abs=0.03)
    assert np.var(lams) == pytest.approx(1 / (4 * (2 * 0.4 + 1)), rel=0.1)


def test_cutmix_pastes_one_box_in_both_modalities_and_lam_is_the_unpasted_share():
    texture, motion = _batch(size=20)
    cfg = AugmentConfig(cutmix=1.0)
    for seed in range(20):
        t, m, perm, lam = mix_batch(texture, motion, cfg, np.random.default_rng(seed))
        pasted_t = (t != texture).any(dim=(0, 1))  # pixels taken from the paired clips
        pasted_m = (m != motion).any(dim=(0, 1))
        assert torch.equal(pasted_t, pasted_m)
        rows, cols = torch.nonzero(pasted_t, as_tuple=True)
        if len(rows):  # one axis-aligned box, filled
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert int(box) == len(rows)
        assert lam == pytest.approx(1 - len(rows) / 400)
        inside = pasted_t[None, None].expand_as(t)
        assert torch.equal(t[inside], texture[perm][inside])
        assert torch.equal(m[inside], motion[perm][inside])


def test_translation_draws_stay_in_range_and_leave_the_other_draws_unchanged():
    base = AugmentConfig(rotation=10.0, flip=True, scale=(0.9, 1.1), erase=0.5, elastic=0.02)
    moved = base.model_copy(update={"translate": 0.05})
    plain = [random_params(base, torch.Generator().manual_seed(i)) for i in range(400)]
    drawn = [random_params(moved, torch.Generator().manual_seed(i)) for i in range(400)]
    for a, b in zip(plain, drawn, strict=True):
        assert (a.angle, a.scale, a.flip, a.erase, a.elastic) == (b.angle, b.scale, b.flip, b.erase, b.elastic)
    assert all(a.shift == (0.0, 0.0) for a in plain)
    shifts = np.array([b.shift for b in drawn])
    assert np.abs(shifts).max() <= 0.05 and np.abs(shifts).max() > 0.048
    # uniform on [-0.05, 0.05]: standard deviation 0.05 / sqrt(3) per axis, axes independent
    assert np.allclose(shifts.std(axis=0), 0.05 / math.sqrt(3), rtol=0.1)
    assert abs(np.corrcoef(shifts.T)[0, 1]) < 0.15


def test_a_whole_pixel_shift_moves_the_image_by_that_many_pixels():
    img = _rand((3, 12, 16), 6)
    out = warp(img, AugmentParams(shift=(2 / 16, -1 / 12)))  # 2 px right, 1 px up
    assert torch.allclose(out[:, :-1, 2:], img[:, 1:, :-2], atol=1e-5)
