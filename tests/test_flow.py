"""TV-L1 flow, optical strain against an analytic field, and the (u, v, |e|) image."""

import numpy as np
import pytest

import msmmt.ops.flow as flow_mod
from msmmt.ops.flow import motion_image, strain, strain_magnitude, tvl1_flow
from msmmt.ops.scaling import minmax_uint8

N = 96
KX = np.fft.fftfreq(N)[None, :]
KY = np.fft.fftfreq(N)[:, None]


def _texture(sigma: float = 2.0) -> np.ndarray:
    spectrum = np.fft.fft2(np.random.default_rng(1).normal(size=(N, N)))
    tex = np.real(np.fft.ifft2(spectrum * np.exp(-2 * np.pi**2 * sigma**2 * (KX**2 + KY**2))))
    return 128 + 40 * tex / tex.std()


@pytest.mark.parametrize("dx,dy", [(0.3, -0.2), (0.7, 0.45)])
def test_tvl1_recovers_a_subpixel_shift(dx, dy):
    onset = _texture()
    # Exact translation: the content moves by (dx, dy), so the flow is (u, v) = (dx, dy).
    apex = np.real(np.fft.ifft2(np.fft.fft2(onset) * np.exp(-2j * np.pi * (KX * dx + KY * dy))))
    flow = tvl1_flow(np.dstack([onset] * 3), np.dstack([apex] * 3))
    assert flow.shape == (N, N, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert np.abs(inner[..., 0] - dx).max() < 0.1
    assert np.abs(inner[..., 1] - dy).max() < 0.1


def test_strain_of_a_linear_field_is_analytic():
    # u = a x + b y, v = c x + d y with distinct coefficients: an axis swap or a wrong
    # shear term gives other numbers.
    a, b, c, d = 0.03, -0.05, 0.02, 0.07
    y, x = np.mgrid[0:40, 0:50].astype(float)
    flow = np.dstack([a * x + b * y, c * x + d * y])
    e_xx, e_yy, e_xy = strain(flow)
    np.testing.assert_allclose(e_xx, a)
    np.testing.assert_allclose(e_yy, d)
    np.testing.assert_allclose(e_xy, (b + c) / 2)
    expected = np.sqrt(a**2 + d**2 + 2 * ((b + c) / 2) ** 2)
    np.testing.assert_allclose(strain_magnitude(flow), expected)
    assert expected == pytest.approx(np.sqrt(a**2 + d**2 + (b + c) ** 2 / 2))


def test_motion_image_channels_are_min_max_scaled_u_v_strain():
    rng = np.random.default_rng(2)
    flow = rng.normal(size=(30, 40, 2))
    image = motion_image(flow)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    for c, channel in enumerate([flow[..., 0], flow[..., 1], strain_magnitude(flow)]):
        expected = np.rint(255 * (channel - channel.min()) / np.ptp(channel))
        np.testing.assert_array_equal(image[..., c], expected)


def test_flipping_the_flow_flips_the_image_and_maps_u_to_255_minus_u():
    y, x = np.mgrid[0:32, 0:48].astype(float)
    flow = np.dstack([np.sin(x / 5) * np.cos(y / 7), 0.5 * np.cos(x / 4 + y / 9)])
    flow += np.random.default_rng(3).normal(0, 0.05, flow.shape)
    # Horizontal flip of a flow field: mirror the columns and negate u.
    flipped = flow[:, ::-1].copy()
    flipped[..., 0] *= -1
    a, b = motion_image(flow).astype(int), motion_image(flipped).astype(int)
    mirrored = a[:, ::-1]
    assert np.abs(b[..., 0] - (255 - mirrored[..., 0])).max() <= 1
    assert np.mean(b[..., 0] == 255 - mirrored[..., 0]) > 0.99
    assert np.abs(b[..., 1:] - mirrored[..., 1:]).max() <= 1


def test_constant_channel_maps_to_mid_grey():
    x = np.dstack([np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)])
    out = minmax_uint8(x, per_channel=True)
    np.testing.assert_array_equal(out[..., 0], 128)
    assert out[..., 1].min() == 0 and out[..., 1].max() == 255


def test_missing_contrib_module_fails_clearly(monkeypatch):
    class NoContrib:
        __version__ = "4.x"

    monkeypatch.setattr(flow_mod, "cv2", NoContrib)
    flow_mod._tvl1.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="opencv-contrib"):
            flow_mod._tvl1()
    finally:
        flow_mod._tvl1.cache_clear()
