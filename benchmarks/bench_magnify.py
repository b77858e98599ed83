"""Eulerian magnification: realised motion gain per mode, rise length and spatial scale.

Synthetic 224 px clips (the face size of the paper's settings): an image is moved
horizontally by ``delta`` px along a raised-cosine rise of ``L`` frames, onset at
frame 0, apex at frame ``L`` (the last). Exact sub-pixel moves by the Fourier shift
theorem, so the scenes are periodic band-limited textures:

- ``fine 16-24 px``: noise band-passed to 16-24 px wavelengths, the finest facial scale;
- ``brow/lip 20-48 px``: brow and lip-corner scale;
- ``jaw 64-100 px``: jaw and cheek scale;
- ``face blob``: a smooth face-sized blob (Gaussian, sigma 35 x 45 px).

The realised gain is what TV-L1 sees: the mean horizontal TV-L1 flow from the
magnified onset to the magnified apex (16 px border left out), relative to its
mean flow for the same image truly moved by ``(1 + alpha) delta``, times
``1 + alpha``; this takes out TV-L1's own bias on a ~1 px motion (2-3%). TV-L1
underestimates sub-pixel moves, so the unmagnified clip (mode ``none``) reads
0.6x-0.8x rather than 1x. The other rows: the gain at single wavelengths for small moves (the spatial part alone,
``lambda_c`` 8 and 16), noise amplification (std of magnified noisy minus magnified
clean static clip over the input noise std, frames 30-59 of 60), and the time to
magnify a 60-frame 224 px RGB clip on one thread.

Modes: ``onset`` and ``iir`` at the config defaults (alpha 10, lambda_c 8, full-height
pyramid), and ``iir 4 levels lambda_c 16``, the settings before issue #9.

    .venv/bin/python benchmarks/bench_magnify.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record, timeit  # noqa: E402

from msmmt.config import PreprocessConfig  # noqa: E402
from msmmt.ops.flow import tvl1_flow  # noqa: E402
from msmmt.ops.magnify import magnify  # noqa: E402

SIZE = 224
RISES = (5, 10, 20, 40, 80, 100)
BORDER = 16
NOISE_STD = 2.0
KX = np.fft.fftfreq(SIZE)[None, :]
KY = np.fft.fftfreq(SIZE)[:, None]


def texture(shortest: float, longest: float, seed: int = 0) -> np.ndarray:
    """Periodic noise band-passed to wavelengths ``shortest..longest`` px, mean 128, std 25."""
    k = np.hypot(KX, KY)
    band = (k >= 1 / longest) & (k <= 1 / shortest)
    spectrum = np.fft.fft2(np.random.default_rng(seed).normal(size=(SIZE, SIZE))) * band
    tex = np.real(np.fft.ifft2(spectrum))
    return 128 + 25 * tex / tex.std()


def blob(sigma_x: float, sigma_y: float) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE] - SIZE / 2
    return 80 + 100 * np.exp(-(x**2 / (2 * sigma_x**2) + y**2 / (2 * sigma_y**2)))


def shift(image: np.ndarray, dx: float) -> np.ndarray:
    """Exact sub-pixel translation by ``dx`` (content moves right), periodic."""
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * KX * dx)))


def rise(image: np.ndarray, frames: int, delta: float) -> np.ndarray:
    """(frames + 1, H, W) float32: ``image`` moved by ``delta (1 - cos(pi t / frames)) / 2``."""
    t = np.arange(frames + 1)
    moves = delta * (1 - np.cos(np.pi * t / frames)) / 2
    return np.stack([shift(image, d) for d in moves]).astype(np.float32)


def mean_flow(first: np.ndarray, second: np.ndarray) -> float:
    inner = np.s_[BORDER:-BORDER, BORDER:-BORDER, 0]
    return float(tvl1_flow(first, second)[inner].mean())


def main() -> None:
    cv2.setNumThreads(1)
    cfg = PreprocessConfig()
    alpha = cfg.magnify_alpha
    modes = {
        "onset": {"mode": "onset", "lambda_c": cfg.magnify_lambda_c, "levels": cfg.magnify_levels},
        "iir": {"mode": "iir", "lambda_c": cfg.magnify_lambda_c, "levels": cfg.magnify_levels},
        "iir 4 levels lambda_c 16": {"mode": "iir", "lambda_c": 16.0, "levels": 4},
    }
    scenes = {
        "fine 16-24 px": (texture(16, 24), 0.1),
        "brow/lip 20-48 px": (texture(20, 48), 0.1),
        "jaw 64-100 px": (texture(64, 100), 0.3),
        "face blob": (blob(35, 45), 0.5),
    }
    rows: list[dict[str, object]] = []
    for scene, (image, delta) in scenes.items():
        reference = mean_flow(image, shift(image, (1 + alpha) * delta))
        # The unmagnified clip, as a baseline: TV-L1 underestimates sub-pixel moves.
        baseline = (1 + alpha) * mean_flow(image, shift(image, delta)) / reference
        rows.append(
            {
                "what": "gain",
                "mode": "none",
                "scene": scene,
                "rise_frames": None,
                "delta_px": delta,
                "value": baseline,
                "unit": "x",
            }
        )
        for length in RISES:
            clip = rise(image, length, delta)
            for name, settings in modes.items():
                out = magnify(clip, alpha, **settings)
                gain = (1 + alpha) * mean_flow(out[0], out[-1]) / reference
                rows.append(
                    {
                        "what": "gain",
                        "mode": name,
                        "scene": scene,
                        "rise_frames": length,
                        "delta_px": delta,
                        "value": gain,
                        "unit": "x",
                    }
                )
            print(f"{scene}, {length} frames done", flush=True)

    # The spatial part alone: gain of a small change at one wavelength (frame 1 - frame 0).
    for lambda_c in (8.0, 16.0):
        for wavelength in (4, 8, 12, 16, 20, 24, 32, 48, 64, 100):
            wave = np.tile(10 * np.sin(2 * np.pi * np.arange(SIZE) / wavelength), (SIZE, 1))
            pair = np.stack([np.full_like(wave, 128), 128 + wave]).astype(np.float32)
            out = magnify(pair, alpha, mode="onset", lambda_c=lambda_c)
            inner = np.s_[BORDER:-BORDER, BORDER:-BORDER]
            change = (out[1] - 128)[inner]
            gain = float((change * wave[inner]).sum() / (wave[inner] ** 2).sum())
            rows.append(
                {
                    "what": "gain at wavelength",
                    "mode": f"lambda_c {lambda_c:g}",
                    "scene": f"sinusoid {wavelength} px",
                    "value": gain,
                    "unit": "x",
                }
            )

    image = scenes["brow/lip 20-48 px"][0]
    clean = np.repeat(image[None].astype(np.float32), 60, axis=0)
    noise = np.random.default_rng(1).normal(0, NOISE_STD, clean.shape).astype(np.float32)
    colour = np.repeat(clean[..., None], 3, axis=-1)
    for name, settings in modes.items():
        amplified = magnify(clean + noise, alpha, **settings) - magnify(clean, alpha, **settings)
        ratio = float(amplified[30:, BORDER:-BORDER, BORDER:-BORDER].std() / NOISE_STD)
        rows.append(
            {
                "what": "noise gain",
                "mode": name,
                "scene": "brow/lip 20-48 px, static",
                "value": ratio,
                "unit": "x input std",
            }
        )
        seconds = timeit(lambda s=settings: magnify(colour, alpha, **s), repeat=5)
        rows.append(
            {
                "what": "time",
                "mode": name,
                "scene": "60 frames 224 px RGB, 1 thread",
                "value": 1000 * seconds,
                "unit": "ms/clip",
            }
        )
    load = os.getloadavg()[0]
    for row in rows:
        row.update(alpha=alpha, load_avg=load)
    record("magnify", rows)


if __name__ == "__main__":
    main()
