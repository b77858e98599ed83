"""Eulerian magnification: filter, pyramid, level gains, both modes and their measured motion gain."""

import numpy as np
import pytest

from msmmt.ops.flow import tvl1_flow
from msmmt.ops.magnify import (
    collapse_pyramid,
    iir_bandpass,
    laplacian_pyramid,
    level_alphas,
    magnify,
    magnify_iir,
    magnify_onset,
    usable_levels,
)

N = 96


def _freqs(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.fftfreq(size)[None, :], np.fft.fftfreq(size)[:, None]


def _texture(sigma: float, seed: int = 0) -> np.ndarray:
    """(N, N) periodic Gaussian-filtered noise, mean 128, std 25."""
    kx, ky = _freqs(N)
    spectrum = np.fft.fft2(np.random.default_rng(seed).normal(size=(N, N)))
    tex = np.real(np.fft.ifft2(spectrum * np.exp(-2 * np.pi**2 * sigma**2 * (kx**2 + ky**2))))
    return 128 + 25 * tex / tex.std()


def _band_texture(size: int, shortest: float, longest: float, seed: int = 0) -> np.ndarray:
    """(size, size) periodic noise band-passed to wavelengths ``shortest..longest`` px."""
    kx, ky = _freqs(size)
    k = np.hypot(kx, ky)
    spectrum = np.fft.fft2(np.random.default_rng(seed).normal(size=(size, size)))
    tex = np.real(np.fft.ifft2(spectrum * ((k >= 1 / longest) & (k <= 1 / shortest))))
    return 128 + 25 * tex / tex.std()


def _blob(size: int, sigma_x: float, sigma_y: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] - size / 2
    return 80 + 100 * np.exp(-(x**2 / (2 * sigma_x**2) + y**2 / (2 * sigma_y**2)))


def _shift(image: np.ndarray, dx: float) -> np.ndarray:
    """Exact sub-pixel translation by dx (content moves right), via the Fourier shift theorem."""
    kx, _ = _freqs(image.shape[1])
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * kx * dx)))


def _measured_shift(ref: np.ndarray, image: np.ndarray) -> float:
    """Gauss-Newton least-squares horizontal shift of ``image`` relative to ``ref`` (interior)."""
    kx, _ = _freqs(ref.shape[1])
    s, inner = 0.0, np.s_[12:-12, 12:-12]
    for _ in range(5):
        moved = _shift(ref, s)
        gx = np.real(np.fft.ifft2(np.fft.fft2(moved) * 2j * np.pi * kx))[inner]
        s -= float((gx * (image - moved)[inner]).sum() / (gx * gx).sum())
    return s


def _rise(image: np.ndarray, frames: int, delta: float) -> np.ndarray:
    """``image`` moved by ``delta`` along a raised-cosine rise: onset frame 0, apex frame ``frames``."""
    t = np.arange(frames + 1)
    return np.stack([_shift(image, d) for d in delta * (1 - np.cos(np.pi * t / frames)) / 2])


def _mean_flow(first: np.ndarray, second: np.ndarray, border: int = 12) -> float:
    return float(tvl1_flow(first, second)[border:-border, border:-border, 0].mean())


def _tvl1_gain(image: np.ndarray, frames: int, delta: float, alpha: float, **settings) -> float:
    """Onset -> apex displacement gain of ``magnify`` as TV-L1 sees it.

    TV-L1's mean flow between the magnified onset and apex, relative to its mean flow
    for ``image`` truly moved by ``(1 + alpha) delta``, times ``1 + alpha`` (which
    takes out TV-L1's own bias and the flat parts of a blob).
    """
    out = magnify(_rise(image, frames, delta).astype(np.float32), alpha, **settings)
    reference = _mean_flow(image, _shift(image, (1 + alpha) * delta))
    return (1 + alpha) * _mean_flow(out[0], out[-1]) / reference


SCENES = {  # 128 px images; moves keep (1 + alpha) delta below ~1/16 of the wavelength
    "texture 16-24 px": (_band_texture(128, 16, 24), 0.1),
    "texture 48-80 px": (_band_texture(128, 48, 80), 0.3),
    "face-like blob": (_blob(128, 20, 25), 0.4),
}


@pytest.mark.parametrize("frames", [5, 20, 100])
@pytest.mark.parametrize("scene", list(SCENES))
def test_onset_mode_magnifies_the_onset_apex_displacement_by_one_plus_alpha(scene, frames):
    image, delta = SCENES[scene]
    assert _tvl1_gain(image, frames, delta, 10.0) == pytest.approx(11.0, rel=0.15)


def test_iir_mode_falls_short_of_one_plus_alpha_for_slow_rises():
    image, delta = SCENES["texture 16-24 px"]
    fast = _tvl1_gain(image, 10, delta, 10.0, mode="iir")
    slow = _tvl1_gain(image, 80, delta, 10.0, mode="iir")
    assert slow < 0.8 * 11.0  # measured 2.1x at 224 px (benchmarks/bench_magnify.py)
    assert slow < 0.5 * fast


def test_onset_mode_is_frame_by_frame_and_keeps_the_onset():
    rng = np.random.default_rng(2)
    frames = rng.uniform(40, 200, (6, 40, 48, 3)).astype(np.float32)
    out = magnify_onset(frames, alpha=3.0)
    np.testing.assert_array_equal(out[0], frames[0])
    # Frame t depends only on itself and the onset, not on the rise between them.
    np.testing.assert_allclose(magnify_onset(frames[[0, 4]], alpha=3.0)[1], out[4], atol=1e-4)


def test_full_height_pyramid_amplifies_structure_but_not_a_brightness_change():
    image = _blob(64, 10, 12)
    brighter = image + 6.0  # uniform: left in the one-pixel residual
    out = magnify_onset(np.stack([image, brighter]).astype(np.float32), alpha=10.0)
    np.testing.assert_allclose(out[1], brighter, atol=1e-3)
    # A coarse blob's small move: ~11x with the full height, far less with 2 levels.
    moved = np.stack([image, _shift(image, 0.05)]).astype(np.float32)
    full = _measured_shift(image, magnify_onset(moved, alpha=10.0, lambda_c=1.0)[1])
    two = _measured_shift(image, magnify_onset(moved, alpha=10.0, lambda_c=1.0, levels=2)[1])
    assert full == pytest.approx(0.55, rel=0.05)
    assert two < 0.3


def test_usable_levels_go_down_to_a_one_pixel_residual():
    assert usable_levels((224, 224)) == 8
    assert usable_levels((224, 300), 4) == 4
    assert usable_levels((5, 9)) == 3
    assert usable_levels((5, 9), 10) == 3
    assert laplacian_pyramid(np.zeros((5, 9)), usable_levels((5, 9)))[-1].shape == (1, 2)


def test_iir_bandpass_matches_the_recursion():
    x = np.random.default_rng(0).normal(size=(12, 3))
    r1, r2 = 0.4, 0.05
    low1, low2, expected = x[0].copy(), x[0].copy(), []
    for frame in x:
        low1 = (1 - r1) * low1 + r1 * frame
        low2 = (1 - r2) * low2 + r2 * frame
        expected.append(low1 - low2)
    np.testing.assert_allclose(iir_bandpass(x, r1, r2), np.array(expected), atol=1e-5)


def test_pyramid_collapses_back_to_the_image():
    image = np.random.default_rng(1).uniform(0, 255, (45, 61)).astype(np.float32)
    pyramid = laplacian_pyramid(image, 3)
    assert [p.shape for p in pyramid] == [(45, 61), (23, 31), (12, 16), (6, 8)]
    np.testing.assert_allclose(collapse_pyramid(pyramid), image, atol=1e-3)


def test_level_gains_follow_the_wavelength_cutoff():
    # lambda_l = 4, 8, 16, 32 px; alpha_l = min(alpha, (1 + alpha) lambda_l / lambda_c - 1)
    np.testing.assert_allclose(level_alphas(4, 10.0, 16.0), [1.75, 4.5, 10.0, 10.0])
    np.testing.assert_allclose(level_alphas(2, 10.0, 100.0), [0.0, 0.0])


@pytest.mark.parametrize("alpha", [5.0, 10.0])
def test_iir_mode_magnifies_a_subpixel_oscillation_by_alpha(alpha):
    tex = _texture(sigma=3.0)
    t = np.arange(30)
    dx = 0.1 * np.sin(2 * np.pi * 0.08 * t)
    frames = np.stack([_shift(tex, d) for d in dx]).astype(np.float32)
    # lambda_c = 1 px: every band level gets the full alpha.
    out = magnify_iir(frames, alpha=alpha, lambda_c=1.0, levels=4)
    measured = np.array([_measured_shift(out[0], frame) for frame in out])
    band = iir_bandpass(dx[:, None], 0.4, 0.05)[:, 0]
    # EVM adds alpha times the band-passed motion: measured = dx + gain * band.
    gain = float(np.dot(measured - dx, band) / np.dot(band, band))
    assert gain == pytest.approx(alpha, rel=0.1)
    assert np.abs(measured - dx - alpha * band).max() < 0.03 * alpha
    np.testing.assert_allclose(out[0], frames[0], atol=1e-3)  # causal filter: onset unchanged


def test_fine_texture_is_magnified_less_below_the_cutoff():
    t = np.arange(20)
    dx = 0.1 * np.sin(2 * np.pi * 0.08 * t)
    band = iir_bandpass(dx[:, None], 0.4, 0.05)[:, 0]
    fine = np.stack([_shift(_texture(sigma=1.0), d) for d in dx]).astype(np.float32)
    gains = []
    for lambda_c in (1.0, 16.0):
        out = magnify_iir(fine, alpha=10.0, lambda_c=lambda_c, levels=4)
        measured = np.array([_measured_shift(out[0], f) for f in out])
        gains.append(np.dot(measured - dx, band) / np.dot(band, band))
    assert gains[1] < 0.7 * gains[0]


@pytest.mark.parametrize("mode", ["onset", "iir"])
def test_colour_is_kept_and_alpha_zero_is_identity(mode):
    rng = np.random.default_rng(3)
    frames = rng.uniform(100, 150, (6, 32, 32, 3)).astype(np.float32)  # no clipping at alpha 1
    np.testing.assert_allclose(magnify(frames, alpha=0.0, mode=mode), frames)
    out = magnify(frames, alpha=1.0, mode=mode)
    delta = out - frames
    # The luminance change is added to R, G and B alike: chrominance is unchanged.
    np.testing.assert_allclose(delta[..., 0], delta[..., 1], atol=1e-3)
    np.testing.assert_allclose(delta[..., 0], delta[..., 2], atol=1e-3)
    assert np.abs(delta).max() > 1.0


def test_bad_input_is_a_value_error():
    frames = np.full((4, 16, 16), 100.0, np.float32)
    with pytest.raises(ValueError, match="r1 > r2"):
        magnify(frames, mode="iir", r1=0.05, r2=0.4)
    with pytest.raises(ValueError, match="unknown magnification mode 'eulerian'"):
        magnify(frames, mode="eulerian")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        magnify(np.zeros((4, 16, 16, 4)))
    with pytest.raises(ValueError, match="shape"):
        magnify(np.zeros((0, 16, 16)))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        magnify(frames, alpha=-1.0)
    with pytest.raises(ValueError, match="levels must be >= 1"):
        magnify(frames, levels=0)
    with pytest.raises(ValueError, match="lambda_c must be > 0"):
        magnify(frames, lambda_c=0.0)
