"""Dynamic images: the closed-form weights, the SVR ranker, and what the image shows."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from msmmt.ops.dynamic_image import approximate_weights, dynamic_image, rank_pool


def test_weights_for_five_frames_match_the_hand_computed_values():
    # H_1..H_5 = 1, 1.5, 11/6, 25/12, 137/60; a_t = 2(6 - t) - 6 (H_5 - H_{t-1}).
    np.testing.assert_allclose(approximate_weights(5), [-3.7, 0.3, 1.3, 1.3, 0.8], atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_weights_match_a_literal_loop_and_sum_to_zero(n):
    expected = []
    for t in range(1, n + 1):
        h_n = sum(1.0 / i for i in range(1, n + 1))
        h_prev = sum(1.0 / i for i in range(1, t))
        expected.append(2 * (n - t + 1) - (n + 1) * (h_n - h_prev))
    weights = approximate_weights(n)
    np.testing.assert_allclose(weights, expected, atol=1e-9)
    assert weights.sum() == pytest.approx(0.0, abs=1e-9)  # a static clip pools to zero


def test_approximate_pooling_is_the_weighted_sum_of_frames():
    frames = np.random.default_rng(0).integers(0, 256, (6, 5, 4, 3)).astype(np.uint8)
    expected = np.einsum("t,thwc->hwc", approximate_weights(6), frames / 255.0)
    np.testing.assert_allclose(rank_pool(frames, "approximate"), expected)


def _rising(seed: int = 0, n: int = 12) -> np.ndarray:
    """Frames whose brightness rises linearly, at a different rate per pixel, plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 140, (24, 20, 3))
    rate = rng.uniform(0, 6, (24, 20, 3))
    return np.stack([base + t * rate + rng.normal(0, 1, base.shape) for t in range(n)])


@pytest.mark.parametrize("mode", ["approximate", "ranksvm"])
def test_image_of_rising_brightness_correlates_with_last_minus_first(mode):
    frames = _rising()
    image = dynamic_image(frames, mode)
    assert image.shape == (24, 20, 3) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255
    change = (frames[-1] - frames[0]).ravel()
    assert np.corrcoef(image.ravel().astype(float), change)[0, 1] > 0.8


def test_ranksvm_vector_ranks_the_time_averaged_frames():
    frames = _rising(seed=1, n=15)
    d = rank_pool(frames, "ranksvm").ravel()
    flat = frames.reshape(len(frames), -1) / 255.0
    phi = np.cumsum(flat, axis=0) / np.arange(1, len(frames) + 1)[:, None]  # eq 1
    scores = phi @ d  # eq 2
    assert spearmanr(scores, np.arange(len(frames))).statistic > 0.99


def test_static_clip_and_bad_mode():
    static = np.full((5, 8, 8, 3), 90.0)
    np.testing.assert_array_equal(dynamic_image(static, "ranksvm"), 128)
    np.testing.assert_array_equal(dynamic_image(static, "approximate"), 128)
    with pytest.raises(ValueError, match="mode"):
        rank_pool(static, "exact")


def test_size_resizes_before_scaling():
    image = dynamic_image(_rising(), size=10)
    assert image.shape == (10, 10, 3) and image.min() == 0 and image.max() == 255
