"""Facial motion within a clip as a 1-D signal, and the key frames it implies.

The signal is computed on *region images*: grey face crops, downscaled, blurred with
a Gaussian of ``blur`` pixels (sensor noise averages out, sub-pixel motion survives as
a grey change ``|dI| ~ |grad I . d|``), standardised (brightness flicker cancels) and
shifted onto the first frame by phase correlation (head drift cancels), inside a mask
of facial regions from the 68 landmarks (:func:`region_mask`: brows, nose and mouth;
not the eyes, so that blinks do not count as expressions). See ``docs/METHOD.md``,
"Apex estimation".

The deviation of each frame from the first, ``D(t) = mean_{p in R} |F_t(p) - F_0(p)|``,
is smoothed (:func:`smooth`); the apex is its peak, onset and offset the last / first
frames around it below ``D_0 + f (D_apex - D_0)``, ``D_0`` the signal's 10th
percentile (:func:`key_frames`). Spotting in long videos, which must also tell
expressions from head motion and long expressions, is :mod:`msmmt.ops.spotting`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "REGIONS",
    "MotionEstimate",
    "clip_key_frames",
    "deviation_signal",
    "key_frames",
    "region_image",
    "region_images",
    "region_mask",
    "smooth",
    "stabilise",
]

REGIONS = {
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
}
"""Landmark groups (0-based, dlib's 68) whose surroundings make up the motion regions."""


def region_mask(landmarks: np.ndarray, shape: tuple[int, int], radius: float) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` of a landmark of :data:`REGIONS`."""
    mask = np.zeros(shape, np.uint8)
    r = max(1, int(round(radius)))
    for group in REGIONS.values():
        for x, y in landmarks[list(group)]:
            cv2.circle(mask, (int(round(x)), int(round(y))), r, 1, -1)
    return mask.astype(bool)


def region_image(frame: np.ndarray, size: int, blur: float) -> np.ndarray:
    """One (H, W[, 3]) uint8 face crop -> (size, size) float32 grey, blurred by ``blur`` px
    and standardised (zero mean, unit standard deviation: brightness flicker cancels)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    if blur > 0:
        small = cv2.GaussianBlur(small, (0, 0), blur)
    return (small - small.mean()) / max(float(small.std()), 1e-6)


def stabilise(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` shifted onto ``reference`` by their phase-correlation translation
    (sub-pixel; removes head drift, which would otherwise read as facial motion)."""
    (dx, dy), _ = cv2.phaseCorrelate(reference, image)
    shift = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]])
    h, w = image.shape
    return cv2.warpAffine(image, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def region_images(
    frames: np.ndarray, size: int, blur: float, stabilised: bool = True
) -> np.ndarray:
    """(T, H, W[, 3]) uint8 face crops -> (T, size, size) float32 :func:`region_image` s,
    each stabilised onto the first (unless ``stabilised=False``)."""
    out = np.empty((len(frames), size, size), np.float32)
    for t, frame in enumerate(frames):
        image = region_image(frame, size, blur)
        out[t] = image if t == 0 or not stabilised else stabilise(image, out[0])
    return out


def smooth(signal: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` frames (odd; edges use the frames that exist)."""
    signal = np.asarray(signal, dtype=np.float64)
    if width <= 1 or len(signal) < 2:
        return signal.copy()
    kernel = np.ones(width | 1)
    centred = slice(len(kernel) // 2, len(kernel) // 2 + len(signal))  # "same", also when
    sums = np.convolve(signal, kernel, "full")[centred]  # the kernel outgrows the signal
    counts = np.convolve(np.ones_like(signal), kernel, "full")[centred]
    return sums / counts


def deviation_signal(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``D(t) = mean_{p in mask} |F_t(p) - F_0(p)|`` of region images (T, H, W): (T,)."""
    inside = images[:, mask]
    return np.abs(inside - inside[0]).mean(1)


@dataclass(frozen=True)
class MotionEstimate:
    """Onset, apex and offset (0-based positions) estimated from a motion signal (the
    annotated key frames are :class:`msmmt.core.keyframes.KeyFrames`)."""

    onset: int
    apex: int
    offset: int
    signal: np.ndarray
    """The smoothed signal they were read from."""
    method: str
    """How they were obtained, in words."""


def key_frames(signal: np.ndarray, fraction: float = 0.2, width: int = 3) -> MotionEstimate:
    """Apex at the peak of the smoothed ``signal``; onset / offset where it crosses
    ``D_0 + fraction (D_apex - D_0)`` before / after the apex (module docstring)."""
    s = smooth(signal, width)
    apex = int(np.argmax(s))
    base = float(np.percentile(s, 10))
    level = base + fraction * (s[apex] - base)
    below = np.flatnonzero(s[:apex] < level)
    onset = int(below[-1]) if len(below) else 0
    after = np.flatnonzero(s[apex:] < level)
    offset = apex + int(after[0]) if len(after) else len(s) - 1
    method = (
        f"facial motion: peak of the mean grey change against the first frame in the brow, "
        f"nose and mouth regions (smoothed over {width} frames); onset/offset at "
        f"{fraction:.0%} of the rise"
    )
    return MotionEstimate(onset, apex, offset, s, method)


def clip_key_frames(
    faces: np.ndarray,
    landmarks: np.ndarray,
    size: int = 112,
    blur: float = 1.5,
    stabilised: bool = True,
) -> MotionEstimate:
    """Onset, apex and offset of a clip of aligned faces (T, S, S, 3) uint8 whose (68, 2)
    ``landmarks`` are in the faces' pixels: :func:`key_frames` of :func:`deviation_signal`
    of :func:`region_images` at ``size`` px (regions within ``0.1 size`` of the landmarks)."""
    scale = size / faces.shape[1]
    images = region_images(faces, size, blur, stabilised)
    mask = region_mask(np.asarray(landmarks) * scale, (size, size), 0.1 * size)
    return key_frames(deviation_signal(images, mask))
