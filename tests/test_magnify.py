"""Eulerian video magnification: filter, pyramid, level gains and the measured motion gain."""

import numpy as np
import pytest

from msmmt.ops.magnify import (
    collapse_pyramid,
    iir_bandpass,
    laplacian_pyramid,
    level_alphas,
    magnify,
)

N = 96
KX = np.fft.fftfreq(N)[None, :]
KY = np.fft.fftfreq(N)[:, None]


def _texture(sigma: float, seed: int = 0) -> np.ndarray:
    """Periodic Gaussian-filtered noise, mean 128, std 25."""
    spectrum = np.fft.fft2(np.random.default_rng(seed).normal(size=(N, N)))
    tex = np.real(np.fft.ifft2(spectrum * np.exp(-2 * np.pi**2 * sigma**2 * (KX**2 + KY**2))))
    return 128 + 25 * tex / tex.std()


def _shift(image: np.ndarray, dx: float) -> np.ndarray:
    """Exact sub-pixel translation by dx (content moves right), via the Fourier shift theorem."""
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * KX * dx)))


def _measured_shift(ref: np.ndarray, image: np.ndarray) -> float:
    """Gauss-Newton least-squares horizontal shift of ``image`` relative to ``ref`` (interior)."""
    s, inner = 0.0, np.s_[12:-12, 12:-12]
    for _ in range(5):
        moved = _shift(ref, s)
        gx = np.real(np.fft.ifft2(np.fft.fft2(moved) * 2j * np.pi * KX))[inner]
        s -= float((gx * (image - moved)[inner]).sum() / (gx * gx).sum())
    return s


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
def test_subpixel_oscillation_is_magnified_by_alpha(alpha):
    tex = _texture(sigma=3.0)
    t = np.arange(30)
    dx = 0.1 * np.sin(2 * np.pi * 0.08 * t)
    frames = np.stack([_shift(tex, d) for d in dx]).astype(np.float32)
    # lambda_c = 1 px: every band level gets the full alpha.
    out = magnify(frames, alpha=alpha, lambda_c=1.0, levels=4)
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
        out = magnify(fine, alpha=10.0, lambda_c=lambda_c)
        measured = np.array([_measured_shift(out[0], f) for f in out])
        gains.append(np.dot(measured - dx, band) / np.dot(band, band))
    assert gains[1] < 0.7 * gains[0]


def test_colour_is_kept_and_alpha_zero_is_identity():
    rng = np.random.default_rng(3)
    frames = rng.uniform(60, 190, (6, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(magnify(frames, alpha=0.0), frames)
    out = magnify(frames, alpha=2.0)
    delta = out - frames
    # The luminance change is added to R, G and B alike: chrominance is unchanged.
    np.testing.assert_allclose(delta[..., 0], delta[..., 1], atol=1e-3)
    np.testing.assert_allclose(delta[..., 0], delta[..., 2], atol=1e-3)
    assert np.abs(delta).max() > 1.0
    with pytest.raises(ValueError, match="r1 > r2"):
        magnify(frames, r1=0.05, r2=0.4)
