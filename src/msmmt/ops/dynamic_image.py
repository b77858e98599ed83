"""Dynamic images: rank pooling of a clip into one RGB image (eqs 1-4; `docs/METHOD.md`, "Dynamic image").

A ranking function ``psi(t | d) = <d, phi_t>`` (eq 2) on the time-varying means
``phi_t = (1/t) sum_{tau <= t} F_tau`` (eq 1, sigma = identity on RGB pixels) should
grow with ``t``; the pooled clip is the ``d*`` that minimises eq 4's regularised
pairwise hinge loss (Fernando et al., CVPR 2015, "Modeling video evolution for
action recognition").

- ``approximate`` (Bilen et al., CVPR 2016, "Dynamic image networks for action
  recognition"): one gradient step of eq 4 from ``d = 0``, written on the frames
  themselves: ``d = sum_t a_t F_t`` with
  ``a_t = 2 (T - t + 1) - (T + 1) (H_T - H_{t-1})``, ``H_t = sum_{i <= t} 1 / i``, ``H_0 = 0``.
- ``ranksvm``: a linear support-vector regression of ``t`` on ``phi_t`` (epsilon-insensitive,
  ``C = 1``, ``epsilon = 0.1``; the usual stand-in for the pairwise RankSVM, as in
  Fernando et al.'s code), solved in the dual with the T x T Gram matrix of the
  ``phi_t`` (scikit-learn's ``SVR(kernel="precomputed")``): with T frames of
  H x W x 3 pixels that is T unknowns instead of H W 3, and ``d* = sum_i beta_i phi_i``.
  The ``phi_t`` are centred over time and divided by their overall standard
  deviation, which leaves the ranking unchanged and keeps the problem well conditioned.

Either way ``d`` is reshaped to H x W x 3 and min-max scaled (over all pixels and
channels) to an 8-bit RGB image.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from msmmt.ops.scaling import minmax_uint8, resize_square

__all__ = ["approximate_weights", "dynamic_image", "rank_pool"]


def approximate_weights(n_frames: int) -> np.ndarray:
    """``a_1 .. a_T`` of approximate rank pooling (Bilen et al. 2016), float64."""
    if n_frames < 1:
        raise ValueError("a dynamic image needs at least one frame")
    t = np.arange(1, n_frames + 1)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / t)])  # H_0 .. H_T
    return 2.0 * (n_frames - t + 1) - (n_frames + 1) * (harmonic[n_frames] - harmonic[t - 1])


def _ranksvm(flat: np.ndarray) -> np.ndarray:
    from sklearn.svm import SVR

    n = len(flat)
    phi = np.cumsum(flat, axis=0) / np.arange(1, n + 1)[:, None]
    phi -= phi.mean(axis=0)
    scale = phi.std()
    if n < 2 or scale == 0:
        return np.zeros(flat.shape[1])
    phi /= scale
    # A linear SVR solved in its dual with the T x T Gram matrix: w = sum_i beta_i phi_i.
    model = SVR(kernel="precomputed", C=1.0, epsilon=0.1)
    model.fit(phi @ phi.T, np.arange(1, n + 1, dtype=np.float64))
    return model.dual_coef_[0] @ phi[model.support_]


def rank_pool(
    frames: np.ndarray, mode: Literal["approximate", "ranksvm"] = "approximate"
) -> np.ndarray:
    """The rank-pooling vector ``d`` of frames (T, H, W[, C]), reshaped to one frame, float64."""
    frames = np.asarray(frames)
    if frames.ndim < 3 or len(frames) == 0:
        raise ValueError(f"expected frames (T, H, W[, C]), got shape {frames.shape}")
    flat = frames.reshape(len(frames), -1).astype(np.float64) / 255.0
    if mode == "approximate":
        d = approximate_weights(len(frames)) @ flat
    elif mode == "ranksvm":
        d = _ranksvm(flat)
    else:
        raise ValueError(f"dynamic image mode {mode!r}: expected 'approximate' or 'ranksvm'")
    return d.reshape(frames.shape[1:])


def dynamic_image(
    frames: np.ndarray,
    mode: Literal["approximate", "ranksvm"] = "approximate",
    size: int | None = None,
) -> np.ndarray:
    """Dynamic image of frames (T, H, W, 3): (H, W, 3) uint8, min-max scaled.

    ``size`` resizes ``d`` to ``size x size`` before the scaling.
    """
    return minmax_uint8(resize_square(rank_pool(frames, mode), size))
