"""Eulerian video magnification (Wu, Rubinstein, Shih, Guttag, Durand, Freeman, SIGGRAPH 2012).

Linear EVM for motion, as in the authors' ``amplify_spatial_lpyr_temporal_iir``:

1. temporal band-pass of every pixel: the difference of two first-order IIR
   low-passes ``L_r[t] = (1 - r) L_r[t-1] + r x[t]``, ``L_r[0] = x[0]``, so
   ``B[t] = L_r1[t] - L_r2[t]`` (r1 > r2; no frame rate needed, and the first frame
   is left unchanged since ``B[0] = 0``);
2. a Laplacian pyramid of ``B[t]`` per frame, band level ``l`` (0 = finest) scaled by
   ``alpha_l = clip((1 + alpha) lambda_l / lambda_c - 1, 0, alpha)`` with the level's
   wavelength ``lambda_l = 2**(l + 2)`` px: full ``alpha`` for wavelengths of at least
   ``lambda_c``, attenuated below it, where ``(1 + alpha) delta < lambda / 8`` would
   fail; the low-pass residual is not amplified (it carries illumination, not motion);
3. collapse and add to the frame.

Both the temporal filter and the pyramid are linear, so filtering the frames before
building the pyramid (as here) equals filtering each pyramid level. Magnification
acts on the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` and adds ``Delta Y`` to the
three channels, which leaves YIQ's chrominance unchanged (EVM with chromatic
attenuation 0).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "collapse_pyramid",
    "iir_bandpass",
    "laplacian_pyramid",
    "level_alphas",
    "magnify",
    "usable_levels",
]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def iir_bandpass(x: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """``L_r1 - L_r2`` along axis 0 (time), each ``L_r`` a first-order low-pass started at ``x[0]``."""
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros_like(x)
    low1, low2 = x[0].copy(), x[0].copy()
    for t in range(1, len(x)):  # vectorised over pixels; far faster than lfilter along axis 0
        low1 += r1 * (x[t] - low1)
        low2 += r2 * (x[t] - low2)
        np.subtract(low1, low2, out=out[t])
    return out


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` band-pass images (finest first) and the low-pass residual, float32."""
    bands = []
    current = np.asarray(image, dtype=np.float32)
    for _ in range(levels):
        down = cv2.pyrDown(current)
        bands.append(current - cv2.pyrUp(down, dstsize=current.shape[1::-1]))
        current = down
    return [*bands, current]


def collapse_pyramid(pyramid: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + cv2.pyrUp(image, dstsize=band.shape[1::-1])
    return image


def level_alphas(levels: int, alpha: float, lambda_c: float) -> np.ndarray:
    """``alpha_l`` of each band level (finest first), see the module docstring."""
    wavelengths = 2.0 ** (np.arange(levels) + 2)
    return np.clip((1.0 + alpha) * wavelengths / lambda_c - 1.0, 0.0, alpha)


def usable_levels(shape: tuple[int, int], levels: int) -> int:
    """``levels`` capped so that the residual keeps at least 2 pixels per side."""
    return max(1, min(levels, int(np.log2(min(shape))) - 1))


def magnify(
    frames: np.ndarray,
    alpha: float = 10.0,
    r1: float = 0.4,
    r2: float = 0.05,
    lambda_c: float = 16.0,
    levels: int = 4,
) -> np.ndarray:
    """Motion-magnified copy of a clip (T, H, W, 3) or (T, H, W): float32 in [0, 255]."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(f"expected frames (T, H, W[, 3]), got shape {frames.shape}")
    if r2 >= r1:
        raise ValueError(f"band-pass needs r1 > r2, got r1={r1}, r2={r2}")
    luma = frames @ _LUMA if frames.ndim == 4 else frames
    band = iir_bandpass(luma, r1, r2)
    n = usable_levels(luma.shape[1:], levels)
    weights = level_alphas(n, alpha, lambda_c)
    delta = np.empty_like(band)
    for t, b in enumerate(band):
        pyramid = laplacian_pyramid(b, n)
        scaled = [w * level for w, level in zip(weights, pyramid[:-1], strict=True)]
        delta[t] = collapse_pyramid([*scaled, np.zeros_like(pyramid[-1])])
    out = frames + (delta[..., None] if frames.ndim == 4 else delta)
    return np.clip(out, 0.0, 255.0, out=out)
