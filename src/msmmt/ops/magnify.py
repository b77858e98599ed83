r"""Eulerian motion magnification of a face clip (linear, after Wu et al. 2012 [1]_).

Two modes, both linear in the frames and both built on the same spatial part:

- ``onset`` (:func:`magnify_onset`, the default): amplifies each frame's change from
  the onset frame, so the onset -> apex displacement is magnified ``1 + alpha``
  times whatever the rise time and the frame rate;
- ``iir`` (:func:`magnify_iir`): amplifies an IIR temporal band-pass of the frames
  as in the authors' ``amplify_spatial_lpyr_temporal_iir``; a slow rise is partly
  outside the band, so the realised gain falls with the onset -> apex length.

Spatial part, shared: the luminance change ``C_t`` of frame ``t`` is split into the
levels of a Laplacian pyramid (:func:`laplacian_pyramid`), band level ``l``
(0 = finest) is scaled by ``alpha_l`` (:func:`level_alphas`: attenuated below the
cut-off wavelength ``lambda_c``, where the first-order approximation behind
Eulerian magnification fails), the low-pass residual is not amplified, and the
collapsed result is added to the frame:

.. math:: O_t = I_t + \sum_{l < n} \alpha_l \, P_l(C_t)

By default the pyramid has its full height, down to a residual of one pixel on the
shorter side: the residual then holds only the change of mean brightness (not
amplified), and every structure coarser than ``lambda_c`` gets the full ``alpha``.
Magnification acts on the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` and adds
the amplified ``Delta Y`` to the three channels, which leaves YIQ's chrominance
unchanged (EVM with chromatic attenuation 0). Both modes are causal and leave the
first frame, the onset, unchanged.

The gains quoted in the docstrings are measured by ``benchmarks/bench_magnify.py``
(results in ``benchmarks/results/magnify.csv``): TV-L1 flow (:mod:`msmmt.ops.flow`)
from the magnified onset to the magnified apex, 224 px clips, ``alpha`` 10. See
``docs/METHOD.md``, section "Eulerian magnification".

References
----------
.. [1] H.-Y. Wu, M. Rubinstein, E. Shih, J. Guttag, F. Durand and W. T. Freeman,
       "Eulerian video magnification for revealing subtle changes in the world",
       ACM Transactions on Graphics 31(4), 65 (SIGGRAPH 2012).
       :DOI:`10.1145/2185520.2185561`
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

__all__ = [
    "collapse_pyramid",
    "iir_bandpass",
    "laplacian_pyramid",
    "level_alphas",
    "magnify",
    "magnify_iir",
    "magnify_onset",
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
    r"""Amplification ``alpha_l`` of each band level of a Laplacian pyramid, finest first.

    .. math:: \alpha_l = \mathrm{clip}\left((1 + \alpha)\,\lambda_l / \lambda_c - 1,\ 0,\ \alpha\right),
              \qquad \lambda_l = 2^{l + 2}\ \text{px}

    Magnifying a displacement ``delta`` by ``1 + alpha_l`` stays within the first-order
    approximation of [1]_ while ``(1 + alpha_l) delta < lambda_l / 8``; the clip gives the
    full ``alpha`` to wavelengths of at least ``lambda_c`` and lowers it below, which
    also keeps the finest levels, where most sensor noise lies, from being amplified
    at full strength.

    Parameters
    ----------
    levels : int
        Number of band levels (the residual is not counted).
    alpha : float
        Amplification factor, ``>= 0``.
    lambda_c : float
        Cut-off wavelength in pixels.

    Returns
    -------
    ndarray
        ``(levels,)`` gains, finest level first.

    Notes
    -----
    The bands of a Laplacian pyramid overlap (level ``l`` also holds part of the
    wavelengths of its neighbours), so the realised gain at a wavelength mixes the
    gains of neighbouring levels and reaches ``1 + alpha`` only at about twice
    ``lambda_c``. Measured (``benchmarks/bench_magnify.py``, small sinusoidal
    displacements, ``alpha`` 10): with ``lambda_c`` 8, 5.5x at 4 px, 8.4x at 8 px, 10.2x at
    16 px, 10.5x at 20 px and 10.8x-11.0x from 32 px up; with ``lambda_c`` 16, 4.2x at 8 px,
    7.6x at 16 px, 8.6x at 20 px, 9.9x at 32 px and 10.5x at 48 px.
    """
    wavelengths = 2.0 ** (np.arange(levels) + 2)
    return np.clip((1.0 + alpha) * wavelengths / lambda_c - 1.0, 0.0, alpha)


def usable_levels(shape: tuple[int, int], levels: int | None = None) -> int:
    """``levels`` capped at the full height of a pyramid of ``shape`` (None: the full height).

    The full height halves the shorter side down to one pixel, ``ceil(log2(min(shape)))``
    levels, so that the residual holds only the mean.
    """
    full = max(1, int(np.ceil(np.log2(min(shape)))))
    return full if levels is None else max(1, min(levels, full))


def _luminance(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 frames (T, H, W[, 3]) and their luminance (T, H, W)."""
    frames = np.asarray(frames, dtype=np.float32)
    if (
        frames.ndim not in (3, 4)
        or len(frames) == 0
        or (frames.ndim == 4 and frames.shape[-1] != 3)
    ):
        raise ValueError(f"expected frames (T, H, W) or (T, H, W, 3), got shape {frames.shape}")
    return frames, (frames @ _LUMA if frames.ndim == 4 else frames)


def _amplify(
    frames: np.ndarray, change: np.ndarray, alpha: float, lambda_c: float, levels: int | None
) -> np.ndarray:
    """``frames + sum_l alpha_l P_l(change)``, residual not amplified, clipped to [0, 255]."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if lambda_c <= 0:
        raise ValueError(f"lambda_c must be > 0, got {lambda_c}")
    if levels is not None and levels < 1:
        raise ValueError(f"levels must be >= 1 or None, got {levels}")
    n = usable_levels(change.shape[1:], levels)
    weights = level_alphas(n, alpha, lambda_c)
    delta = np.empty_like(change)
    for t, c in enumerate(change):
        pyramid = laplacian_pyramid(c, n)
        scaled = [w * band for w, band in zip(weights, pyramid[:-1], strict=True)]
        delta[t] = collapse_pyramid([*scaled, np.zeros_like(pyramid[-1])])
    out = frames + (delta[..., None] if frames.ndim == 4 else delta)
    return np.clip(out, 0.0, 255.0, out=out)


def magnify_onset(
    frames: np.ndarray,
    alpha: float = 10.0,
    lambda_c: float = 8.0,
    levels: int | None = None,
) -> np.ndarray:
    r"""Onset-referenced motion magnification: gain ``1 + alpha`` whatever the rise time.

    Each frame's luminance change from the onset, ``C_t = Y_t - Y_0``, is amplified on a
    Laplacian pyramid and added back:

    .. math:: O_t = I_t + \sum_{l < n} \alpha_l \, P_l(Y_t - Y_0)

    For a small displacement ``I_t(x) = I_0(x - delta_t)``, ``Y_t - Y_0 ~ -delta_t . grad Y_0``
    (the first-order approximation of [1]_), so in a band with gain ``alpha_l``
    ``O_t(x) ~ I_0(x - (1 + alpha_l) delta_t)``: every frame, the apex included, is
    displaced ``1 + alpha_l`` times as far as in the input. No temporal filter is
    involved, so the gain does not depend on the onset -> apex length or the frame
    rate, and each output frame depends only on itself and the onset.

    Parameters
    ----------
    frames : ndarray
        Clip ``(T, H, W)`` or ``(T, H, W, 3)`` (RGB) in [0, 255]; ``frames[0]`` is the
        onset, the reference.
    alpha : float
        Amplification, ``>= 0``: displacements are magnified ``1 + alpha`` times.
    lambda_c : float
        Spatial cut-off wavelength in pixels (see :func:`level_alphas`).
    levels : int or None
        Band levels of the pyramid; None (default) builds its full height, down to a
        one-pixel residual, so that coarse structure (a jaw, the whole face) is
        amplified too and only the change of mean brightness is not.

    Returns
    -------
    ndarray
        Magnified clip, float32, same shape, clipped to [0, 255]; ``out[0] == frames[0]``.

    Notes
    -----
    Measured realised gain at ``alpha`` 10, ``lambda_c`` 8, full height (TV-L1, 224 px,
    onset -> apex of 5, 10, 20, 40, 80 and 100 frames; ``benchmarks/bench_magnify.py``):
    10.4x for a band-limited texture of 16-24 px wavelengths, 10.6x for 20-48 px
    (brow, lip corner), 11.0x for 64-100 px (jaw) and for a face-sized blob, the
    same for every rise length. It holds while ``(1 + alpha) delta`` stays below about
    an eighth of the wavelength; beyond, the linear extrapolation distorts the texture.

    Sensor noise is amplified like any other change from the onset: band by band
    ``O_t - O_0 = (1 + alpha_l)(I_t - I_0)``, so each band of the onset -> apex
    difference keeps the input's signal-to-noise ratio, and the fine bands, where
    white noise mostly lies, weigh less than in the input. Measured on a static clip
    with white noise: the magnified noise is 7.8 times the input noise, below the
    motion gain of 10.4x-11.0x; the ``iir`` mode's is 3.1 times, for a motion gain of
    7.1x-7.9x (5-10 frame rises) down to 1.8x-2.5x (100 frames). A temporal low-pass
    would lower the noise but spread the apex into its neighbours (a 3-tap binomial
    costs 4-7% of the gain on a 5-frame rise) and make each frame depend on the
    frames after it, so none is applied.
    """
    frames, luma = _luminance(frames)
    return _amplify(frames, luma - luma[0], alpha, lambda_c, levels)


def magnify_iir(
    frames: np.ndarray,
    alpha: float = 10.0,
    r1: float = 0.4,
    r2: float = 0.05,
    lambda_c: float = 8.0,
    levels: int | None = None,
) -> np.ndarray:
    r"""Eulerian magnification with Wu et al.'s IIR temporal band-pass [1]_.

    The luminance is band-passed in time by the difference of two first-order
    low-passes (no frame rate needed), started at the first frame,

    .. math:: L_r[t] = (1 - r)\,L_r[t-1] + r\,Y_t,\quad L_r[0] = Y_0, \qquad
              B_t = L_{r_1}[t] - L_{r_2}[t]

    and amplified on a Laplacian pyramid: ``O_t = I_t + sum_l alpha_l P_l(B_t)``, as in
    the authors' ``amplify_spatial_lpyr_temporal_iir``. Both parts are linear, so
    filtering the frames before building the pyramid (as here) equals filtering
    each level.

    Parameters
    ----------
    frames : ndarray
        Clip ``(T, H, W)`` or ``(T, H, W, 3)`` (RGB) in [0, 255], from the onset on.
    alpha : float
        Amplification of the band-passed change, ``>= 0``.
    r1, r2 : float
        Rates of the two low-passes, ``r1 > r2`` (0.4 and 0.05 are the authors' face
        settings).
    lambda_c : float
        Spatial cut-off wavelength in pixels (see :func:`level_alphas`).
    levels : int or None
        Band levels of the pyramid; None (default) builds its full height.

    Returns
    -------
    ndarray
        Magnified clip, float32, same shape, clipped to [0, 255]; ``out[0] == frames[0]``
        since ``B_0 = 0``.

    Notes
    -----
    The apex displacement is magnified ``1 + alpha h``, where ``h`` is the band-pass's
    output at the apex for the displacement profile over its apex value: below 1
    even for a fast rise (``L_r1`` lags) and falling as the rise slows (``L_r2``
    follows it), so the gain falls with the onset -> apex length. Measured at ``alpha``
    10, ``lambda_c`` 8, full height (TV-L1, 224 px, band-limited textures of 16-100 px
    wavelengths and a face-sized blob; ``benchmarks/bench_magnify.py``):

    ================  ===  ===  ===  ===  ===  ===
    rise (frames)       5   10   20   40   80  100
    lowest gain (x)   7.1  7.6  6.7  4.5  2.3  1.8
    highest gain (x)  7.4  7.9  7.0  5.0  3.0  2.5
    ================  ===  ===  ===  ===  ===  ===

    so the same motion is magnified differently at 200 and 100 fps and for short and
    long clips (with the former 4 levels and ``lambda_c`` 16: 1.5x-6.8x, and a
    face-sized blob not at all; see ``docs/METHOD.md``, "Eulerian magnification").
    Sensor noise: 3.1 times the input noise. Use :func:`magnify_onset` for ``1 + alpha``.
    """
    if not r1 > r2:
        raise ValueError(f"band-pass needs r1 > r2, got r1={r1}, r2={r2}")
    frames, luma = _luminance(frames)
    return _amplify(frames, iir_bandpass(luma, r1, r2), alpha, lambda_c, levels)


def magnify(
    frames: np.ndarray,
    alpha: float = 10.0,
    *,
    mode: Literal["onset", "iir"] = "onset",
    lambda_c: float = 8.0,
    levels: int | None = None,
    r1: float = 0.4,
    r2: float = 0.05,
) -> np.ndarray:
    """Motion-magnified clip by :func:`magnify_onset` (``mode="onset"``) or :func:`magnify_iir`.

    ``r1`` and ``r2`` are used by the ``iir`` mode only; ``frames[0]`` is the onset.
    """
    if mode == "onset":
        return magnify_onset(frames, alpha, lambda_c, levels)
    if mode == "iir":
        return magnify_iir(frames, alpha, r1, r2, lambda_c, levels)
    raise ValueError(f"unknown magnification mode {mode!r}, expected 'onset' or 'iir'")
