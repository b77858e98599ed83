"""Motion modality: TV-L1 optical flow onset -> apex, optical strain, the (u, v, |e|) image.

- Flow (eqs 5-6; `docs/METHOD.md`, "Optical flow"): TV-L1 (Zach, Pock, Bischof, DAGM 2007) on grey images,
  OpenCV contrib's ``cv2.optflow.DualTVL1OpticalFlow_create`` with its default
  settings. ``flow[y, x] = (u, v)`` maps the onset frame's pixel (x, y) to
  (x + u, y + v) in the apex frame.
- Strain (eqs 7-9, Liong et al. 2014): with central differences,
  ``e_xx = du/dx``, ``e_yy = dv/dy``, ``e_xy = e_yx = (du/dy + dv/dx) / 2`` and
  ``|e| = sqrt(e_xx^2 + e_yy^2 + e_xy^2 + e_yx^2) = sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2)``.
  ``np.gradient`` of an (H, W) array returns d/drow (= d/dy) first, then d/dcol (= d/dx).
- Motion image: the channels (u, v, |e|), each min-max scaled to [0, 255] on its own,
  uint8. Per-channel scaling maps a negated u to ``255 - s``, so a horizontal flip
  of the image followed by ``u -> 255 - u`` is the flip of the flow.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from msmmt.ops.scaling import minmax_uint8, resize_square

__all__ = ["motion_image", "strain", "strain_magnitude", "to_grey", "tvl1_flow"]


@lru_cache(maxsize=1)
def _tvl1():
    optflow = getattr(cv2, "optflow", None)
    if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no cv2.optflow.DualTVL1OpticalFlow_create: TV-L1 flow "
            "needs the contrib modules (pip install opencv-contrib-python-headless, and "
            "uninstall opencv-python / opencv-python-headless, which shadow it)"
        )
    return optflow.DualTVL1OpticalFlow_create()


def to_grey(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) in [0, 255] -> grey float32 in [0, 1]."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.clip(image / 255.0, 0.0, 1.0)


def tvl1_flow(onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """TV-L1 flow from ``onset`` to ``apex`` (RGB or grey, [0, 255]): (H, W, 2) float32 (u, v)."""
    first, second = to_grey(onset), to_grey(apex)
    if first.shape != second.shape:
        raise ValueError(f"onset {first.shape} and apex {second.shape} frames differ in size")
    # OpenCV scales float input by 255 internally, so it expects grey levels in [0, 1].
    return _tvl1().calc(first, second, None)


def strain(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strain components ``(e_xx, e_yy, e_xy)`` of a flow (H, W, 2), central differences."""
    u = np.asarray(flow[..., 0], dtype=np.float64)
    v = np.asarray(flow[..., 1], dtype=np.float64)
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return u_x, v_y, 0.5 * (u_y + v_x)


def strain_magnitude(flow: np.ndarray) -> np.ndarray:
    """``|e| = sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)`` per pixel, (H, W) float64."""
    e_xx, e_yy, e_xy = strain(flow)
    return np.sqrt(e_xx**2 + e_yy**2 + 2.0 * e_xy**2)


def motion_image(flow: np.ndarray, size: int | None = None) -> np.ndarray:
    """(u, v, |e|) of a flow (H, W, 2), each channel min-max scaled: (H, W, 3) uint8.

    ``size`` resizes the three float channels to ``size x size`` before the scaling
    (strain is computed at the flow's own resolution).
    """
    channels = np.dstack([flow[..., 0], flow[..., 1], strain_magnitude(flow)])
    return minmax_uint8(resize_square(channels, size), per_channel=True)
