"""Synthetic micro-expression clips in the CASME II layout (``msmmt synth``).

The built-in data of the demo and the tests. Every clip starts from one real face
photograph that ships with scikit-image (``skimage.data.astronaut()``), whose 68 dlib
landmarks are found once per process. Each synthetic *subject* is a new identity
made from it: a random similarity transform (rotation, scale, shift, optional
mirroring), a smooth random shape warp, gamma, skin tone and an illumination
gradient. Each *clip* deforms that neutral face with an AU-like displacement field
centred on landmark groups, following a raised-cosine onset -> apex -> offset
profile, plus head jitter, flicker and sensor noise, so that a single frame says
little and motion is the cue.

Geometry. With output pixel p, the subject's neutral face is
``N(p) = src(A^-1 (p + W(p)))`` (A: source -> output similarity, W: smooth shape warp,
a backward map). Frame t of a clip is ``I_t(p) = N(p - peak * s(t) * F(p) - j_t)``, where
``F(p) = sum_k v_k exp(-|p - c_k|^2 / (2 sigma_k^2))`` is the expression's field
(Gaussian bumps at landmarks c_k with face-relative directions v_k) scaled to a
maximum magnitude of 1, ``s(t)`` the temporal profile and ``j_t`` a sub-pixel head
jitter. To first order a point at p in the onset frame moves to
``p + peak * s(t) * F(p)``, so the flow from onset to apex is ``peak * F``.

Classes (MEGC2019 composite; emotion and action units as CASME II codes them):

- positive (``happiness``, AU 12): lip corners 48 / 54 up and outward;
- negative (``disgust`` or ``repression``, AU 4+15): inner brows 21 / 22 down and
  together, lip corners down;
- surprise (``surprise``, AU 1+2+26): brows 17-26 up, jaw 6-10 and lower lip 56-58 down.

Layout written by :func:`generate`: ``OUT/sub01/EP01_01/img1.jpg ... imgN.jpg``, the
coding sheet ``OUT/CASME2-coding-synthetic.xlsx`` (columns as CASME II's) and
``OUT/synthetic.json`` (settings, per-clip parameters, each subject's landmarks).
Every clip draws from its own generator seeded by (seed, subject, clip), so a clip
does not depend on which others are generated, and one seed gives byte-identical
frames.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from msmmt.core.environment import environment
from msmmt.core.io import atomic_folder, atomic_path, atomic_write_json, remove_stale_temporaries
from msmmt.core.records import DatasetError

__all__ = [
    "ACTION_UNITS",
    "CLASSES",
    "COLUMNS",
    "ClipSpec",
    "VARIANTS",
    "Expression",
    "Identity",
    "META_NAME",
    "SHEET_NAME",
    "SynthSettings",
    "clip_frames",
    "draw_clip",
    "gaussian_field",
    "expression_field",
    "generate",
    "make_identity",
    "claim_folder",
    "previous_folders",
    "render_clip",
    "template_face",
    "temporal_profile",
    "write_clip",
]

SHEET_NAME = "CASME2-coding-synthetic.xlsx"
META_NAME = "synthetic.json"
COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
CLASSES = ("positive", "negative", "surprise")
PAD = 8
"""Margin (output pixels) of an identity's coordinate map; displacements stay well below it."""


@dataclass(frozen=True)
class SynthSettings:
    """Ranges the generator draws from (pixels are at the output resolution)."""

    peak_px: tuple[float, float] = (0.5, 3.0)
    """Peak displacement of the expression, drawn uniformly per clip."""
    motion_frames: tuple[int, int] = (20, 60)
    """Frames from onset to offset, both included."""
    apex_fraction: tuple[float, float] = (0.35, 0.6)
    """Position of the apex between onset and offset."""
    lead_frames: tuple[int, int] = (0, 4)
    """Neutral frames before the onset and after the offset (each end drawn separately)."""
    jitter_px: float = 0.15
    """Standard deviation of the head jitter (smoothed noise, a slow drift), per axis."""
    flicker: float = 0.01
    """Standard deviation of the per-frame relative brightness change."""
    noise_std: tuple[float, float] = (1.0, 2.5)
    """Sensor noise (grey levels), drawn per clip."""
    rotation_deg: float = 8.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.04
    """Maximum shift of the face, as a fraction of the output size."""
    shape_warp: float = 0.04
    """Amplitude of the random shape warp, as a fraction of the inter-ocular distance."""
    jpeg_quality: int = 95
    gamma: tuple[float, float] = (0.8, 1.25)
    """Gamma of a subject's face (its contrast), drawn per subject."""
    tone: tuple[float, float] = (0.75, 1.15)
    """Overall brightness of a subject's skin, drawn per subject."""
    tint: float = 0.12
    """Maximum relative change of each colour channel (skin tone), drawn per subject."""
    illumination: float = 0.5
    """Maximum strength of a subject's linear illumination gradient across the frame."""
    aspect: tuple[float, float] = (1.0, 1.0)
    """Horizontal squeeze of the face (a rough stand-in for yaw), drawn per subject."""
    head_px: tuple[float, float] = (0.0, 0.0)
    """Rigid head drift from the first to the last frame (pixels, random direction), per clip."""
    head_deg: float = 0.0
    """Maximum in-plane head rotation from the first to the last frame (degrees), per clip."""
    varied: bool = False
    """Draw each clip's action units from the class's variants (:data:`VARIANTS`) instead of
    rendering the class's one prototype (:data:`EXPRESSIONS`)."""
    label_noise: float = 0.0
    """Probability that a clip shows the motion of another class than its label."""
    grey: bool = False
    """Greyscale camera (SAMM): frames have three equal channels."""
    blink: float = 0.0
    """Probability that a clip also holds an eye blink (AU 45) at a random time, unrelated to
    its class."""
    blink_px: tuple[float, float] = (1.0, 4.0)
    """Peak displacement of the upper eyelids in a blink."""
    blink_frames: tuple[int, int] = (6, 12)
    """Duration of a blink, frames."""


@dataclass(frozen=True)
class Expression:
    """One class: its emotion(s), action units and landmark motions.

    ``motions``: (landmark indices, up, outward, sigma) tuples; ``up`` and ``outward``
    are the components of the motion along the face's own axes (up = from mouth to
    eyes; outward = away from the face's vertical midline), sigma is the Gaussian's
    width as a fraction of the inter-ocular distance.
    """

    name: str
    emotions: tuple[str, ...]
    action_units: str
    motions: tuple[tuple[tuple[int, ...], float, float, float], ...]


EXPRESSIONS: dict[str, Expression] = {
    "positive": Expression("positive", ("happiness",), "12", (((48, 54), 0.8, 0.6, 0.3),)),
    "negative": Expression(
        "negative",
        ("disgust", "repression"),
        "4+15",
        (((21, 22), -0.7, -0.7, 0.25), ((48, 54), -1.0, 0.0, 0.3)),
    ),
    "surprise": Expression(
        "surprise",
        ("surprise",),
        "1+2+26",
        (
            (tuple(range(17, 27)), 1.0, 0.0, 0.15),
            (tuple(range(6, 11)), -1.0, 0.0, 0.25),
            ((56, 57, 58), -1.0, 0.0, 0.2),
        ),
    ),
}

Motion = tuple[tuple[int, ...], float, float, float]

ACTION_UNITS: dict[str, tuple[Motion, ...]] = {
    "1": (((20, 21, 22, 23), 1.0, 0.0, 0.15),),  # inner brow raiser
    "2": (((17, 18, 25, 26), 1.0, 0.0, 0.15),),  # outer brow raiser
    "4": (((19, 20, 21, 22, 23, 24), -0.7, -0.7, 0.2),),  # brow lowerer
    "5": (((37, 38, 43, 44), 1.0, 0.0, 0.1),),  # upper lid raiser
    "6": (((40, 41, 46, 47), 0.6, 0.0, 0.15), ((2, 14), 0.8, 0.2, 0.3)),  # cheek raiser
    "7": (((37, 38, 43, 44), -0.6, 0.0, 0.08), ((40, 41, 46, 47), 0.6, 0.0, 0.08)),  # lid tightener
    "9": (((31, 35), 1.0, 0.0, 0.15), ((21, 22), -0.5, -0.3, 0.15)),  # nose wrinkler
    "10": (((50, 51, 52), 1.0, 0.0, 0.18),),  # upper lip raiser
    "12": (((48, 54), 0.8, 0.6, 0.3),),  # lip corner puller
    "14": (((48, 54), 0.2, 0.8, 0.2),),  # dimpler
    "15": (((48, 54), -1.0, 0.0, 0.3),),  # lip corner depressor
    "17": (((7, 8, 9, 57), 1.0, 0.0, 0.25),),  # chin raiser
    "24": (((50, 51, 52), -0.7, 0.0, 0.12), ((56, 57, 58), 0.7, 0.0, 0.12)),  # lip pressor
    "25": (((56, 57, 58), -1.0, 0.0, 0.15),),  # lips part
    "26": (((6, 7, 8, 9, 10), -1.0, 0.0, 0.25), ((56, 57, 58), -1.0, 0.0, 0.2)),  # jaw drop
    "45": (((37, 38, 43, 44), -1.0, 0.0, 0.1), ((40, 41, 46, 47), 0.3, 0.0, 0.08)),  # blink
}
"""Action units (FACS) as landmark motions, in :class:`Expression`'s (points, up, outward,
sigma) form. A code prefixed ``L`` or ``R`` (``R12``) moves one side of the face only."""

VARIANTS: dict[str, tuple[tuple[str, int], ...]] = {
    "positive": (("12", 3), ("6+12", 2), ("R12", 1), ("L12", 1), ("12+25", 1)),
    "negative": (
        ("4", 3), ("4+7", 2), ("9", 1), ("10", 1), ("14", 1), ("R14", 1), ("15", 1),
        ("17", 1), ("4+15", 1), ("1+4", 1), ("24", 1),
    ),
    "surprise": (("1+2", 3), ("1+2+5", 1), ("1+2+26", 1), ("25+26", 1), ("5", 1), ("1", 1)),
}
"""Action-unit combinations of each class with their relative frequency (``varied=True``):
the combinations that CASME II and SAMM code for happiness; for disgust, repression, anger,
contempt and sadness; and for surprise. Variants of different classes share action units
(AU 1 in ``1+4`` and ``1+2``, the lip corners in AU 12 and AU 14), as real clips do."""

# Standard normal quantiles at (i + 0.5) / 256: indexing with uniform bytes gives N(0, 1) noise
# (truncated at 2.9 sigma).
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)

# Index permutation of the 68-point scheme under a horizontal mirror.
_MIRROR = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


@lru_cache(maxsize=1)
def template_face() -> tuple[np.ndarray, np.ndarray]:
    """The source photograph (512 x 512 x 3 float32 RGB in [0, 255]) and its (68, 2) landmarks."""
    from skimage.data import astronaut

    from msmmt.ops.landmarks import detect_landmarks

    image = astronaut()
    landmarks = detect_landmarks(image)
    if landmarks is None:
        raise RuntimeError("dlib found no face in skimage.data.astronaut(); check the dlib install")
    image = image.astype(np.float32)
    image.setflags(write=False)
    landmarks.setflags(write=False)
    return image, landmarks


def _eye_distance(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ``up`` vector (mouth -> eyes), a unit vector across the face, and the face's centre."""
    eyes = landmarks[36:48].mean(0)
    mouth = landmarks[48:68].mean(0)
    up = (eyes - mouth) / np.linalg.norm(eyes - mouth)
    across = np.array([-up[1], up[0]])
    return up, across, (eyes + mouth) / 2


def gaussian_field(
    size: int, centres: np.ndarray, vectors: np.ndarray, sigmas: np.ndarray, origin: int = 0
) -> np.ndarray:
    """``sum_k v_k exp(-|p - c_k|^2 / (2 sigma_k^2))`` on the pixels ``origin .. origin + size - 1``
    of both axes -> (size, size, 2)."""
    grid = np.arange(origin, origin + size, dtype=np.float32)
    field = np.zeros((size, size, 2), np.float32)
    for (cx, cy), v, s in zip(centres, vectors, sigmas, strict=True):
        gx = np.exp(-((grid - cx) ** 2) / (2 * s * s)).astype(np.float32)
        gy = np.exp(-((grid - cy) ** 2) / (2 * s * s)).astype(np.float32)
        bump = np.outer(gy, gx)
        field[..., 0] += v[0] * bump
        field[..., 1] += v[1] * bump
    return field


def action_unit_motions(action_units: str) -> list[tuple[Motion, int]]:
    """The motions of ``"1+2+R12"``-style codes, each with the side it keeps (0: both,
    1 / -1: one side of the face's midline)."""
    out = []
    for code in action_units.split("+"):
        side = {"L": 1, "R": -1}.get(code[:1], 0)
        unit = code[1:] if side else code
        if unit not in ACTION_UNITS:
            raise ValueError(f"unknown action unit {code!r} in {action_units!r}; known: {', '.join(ACTION_UNITS)}")
        out.extend((motion, side) for motion in ACTION_UNITS[unit])
    return out


def expression_field(
    landmarks: np.ndarray, expression: str, size: int, action_units: str | None = None
) -> np.ndarray:
    """The expression's displacement field F (size, size, 2) as (dx, dy), max |F| = 1.

    Gaussian bumps at the expression's landmarks (``landmarks``: (68, 2) (x, y) in
    output pixels) with face-relative directions: the class prototype of
    :data:`EXPRESSIONS`, or the motions of ``action_units`` (:data:`ACTION_UNITS`).
    """
    motions = (
        [(m, 0) for m in EXPRESSIONS[expression].motions]
        if action_units is None
        else action_unit_motions(action_units)
    )
    up, across, centre = _face_axes(landmarks)
    eye = _eye_distance(landmarks)
    centres, vectors, sigmas = [], [], []
    for (points, up_c, out_c, sigma), keep in motions:
        for i in points:
            side = np.sign(np.dot(landmarks[i] - centre, across))
            if keep and side != keep:
                continue
            vectors.append(up_c * up + out_c * side * across)
            centres.append(landmarks[i])
            sigmas.append(sigma * eye)
    field = gaussian_field(size, np.array(centres), np.array(vectors), np.array(sigmas))
    return field / np.sqrt((field**2).sum(-1)).max()


def temporal_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Raised-cosine profile s(t) over frame indices 0..n_frames-1.

    s = 0 up to ``onset``, ``(1 - cos(pi (t - onset) / (apex - onset))) / 2`` up to the
    apex (s = 1), the mirror image down to 0 at ``offset``, 0 after.
    """
    if not 0 <= onset < apex < offset < n_frames:
        raise ValueError(f"need 0 <= onset < apex < offset < n_frames, got {onset, apex, offset, n_frames}")
    t = np.arange(n_frames, dtype=np.float64)
    rise = (1 - np.cos(np.pi * np.clip((t - onset) / (apex - onset), 0, 1))) / 2
    fall = (1 - np.cos(np.pi * np.clip((offset - t) / (offset - apex), 0, 1))) / 2
    return np.where(t <= apex, rise, fall)


@dataclass(frozen=True)
class Identity:
    """One synthetic subject: how output pixels map into the source photo, and its looks."""

    size: int
    coords: np.ndarray
    """(size + 2 PAD, size + 2 PAD, 2) source-photo (x, y) of the output pixels -PAD .. size + PAD - 1:
    ``A^-1 (p + W(p))``; the margin keeps displaced lookups near the border exact."""
    source: np.ndarray
    """The source photo after this subject's gamma and skin tone (float32)."""
    illumination: np.ndarray
    """(size, size, 3) multiplicative illumination gradient."""
    landmarks: np.ndarray
    """(68, 2) landmarks of the neutral face in output pixels (dlib's index convention)."""

    def source_coords(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Source-photo coordinates (H, W, 2) of the neutral face's points (x, y) (float32 arrays)."""
        return cv2.remap(
            self.coords, x + PAD, y + PAD, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def _sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a (H, W, C) field at (N, 2) (x, y) points."""
    xy = points.astype(np.float32).reshape(1, -1, 2)
    out = cv2.remap(field, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(points), -1)


def make_identity(rng: np.random.Generator, size: int, settings: SynthSettings | None = None) -> Identity:
    """Draw a new subject from the template face (see the module docstring for A and W)."""
    st = settings or SynthSettings()
    image, lm_src = template_face()
    lo, hi = lm_src.min(0), lm_src.max(0)
    centre_src = (lo + hi) / 2 - np.array([0.0, 0.1 * (hi[1] - lo[1])])
    base_scale = size / (2.2 * (hi - lo).max())

    aspect = rng.uniform(*st.aspect) if st.aspect != (1.0, 1.0) else 1.0
    angle = np.deg2rad(rng.uniform(-st.rotation_deg, st.rotation_deg))
    scale = base_scale * rng.uniform(*st.scale)
    shift = rng.uniform(-st.shift, st.shift, 2) * size
    mirror = rng.random() < 0.5
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rot = rot @ np.diag([aspect, 1.0])
    if mirror:
        rot = np.diag([-1.0, 1.0]) @ rot
    forward = np.hstack([rot, (size / 2 + shift - rot @ centre_src)[:, None]])
    lm_affine = lm_src @ forward[:, :2].T + forward[:, 2]

    eye = _eye_distance(lm_affine)
    coarse = rng.normal(0.0, st.shape_warp * eye, (5, 5, 2)).astype(np.float32)
    padded = size + 2 * PAD
    warp = cv2.resize(coarse, (padded, padded), interpolation=cv2.INTER_CUBIC)
    # Feature-specific changes: eye spacing, mouth width, nose length, face length and width.
    groups = [range(36, 42), range(42, 48), (48,), (54,), range(30, 36), range(6, 11), (3, 4), (12, 13)]
    centres = np.array([lm_affine[list(g)].mean(0) for g in groups])
    vectors = rng.normal(0.0, 1.5 * st.shape_warp * eye, (len(groups), 2))
    warp += gaussian_field(padded, centres, vectors, np.full(len(groups), 0.3 * eye), -PAD)
    grid = np.arange(-PAD, size + PAD, dtype=np.float64)
    q = np.stack(np.meshgrid(grid, grid), -1) + warp
    inverse = cv2.invertAffineTransform(forward)
    coords = q @ inverse[:, :2].T + inverse[:, 2]

    # Landmarks of the neutral face: solve p + W(p) = A l for p by fixed-point iteration.
    landmarks = lm_affine.copy()
    for _ in range(8):
        landmarks = lm_affine - _sample(warp, landmarks + PAD)
    if mirror:
        landmarks = landmarks[_MIRROR]

    gamma = rng.uniform(*st.gamma)
    tone = rng.uniform(*st.tone) * (1 + rng.uniform(-st.tint, st.tint, 3))
    source = (255.0 * (image / 255.0) ** gamma * tone).astype(np.float32)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    grid = (np.arange(size, dtype=np.float32) - size / 2) / size
    ramp = direction[0] * grid[None, :] + direction[1] * grid[:, None]
    illumination = np.repeat((1 + rng.uniform(0.0, st.illumination) * ramp)[..., None], 3, -1).astype(np.float32)
    return Identity(size, coords.astype(np.float32), source, illumination, landmarks)


def _smooth_walk(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    """(n, 2) smoothed Gaussian noise (a slow drift) with standard deviation ``std``."""
    steps = rng.normal(0.0, 1.0, (n + 8, 2))
    kernel = np.hanning(9)
    smooth = np.stack([np.convolve(steps[:, i], kernel, "valid") for i in range(2)], 1)
    smooth -= smooth.mean(0)
    return std * smooth / max(smooth.std(), 1e-9)


def _head_motion(rng: np.random.Generator, n: int, st: SynthSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame rigid head drift: rotation angles (n,) in radians and shifts (n, 2) in
    pixels, growing linearly from 0 at the first frame to the drawn values at the last."""
    ramp = np.linspace(0.0, 1.0, n)
    if st.head_px[1] <= 0 and st.head_deg <= 0:
        return np.zeros(n), np.zeros((n, 2))
    size = rng.uniform(*st.head_px)
    direction = rng.uniform(0.0, 2 * np.pi)
    angle = np.deg2rad(rng.uniform(-st.head_deg, st.head_deg))
    shift = size * np.array([np.cos(direction), np.sin(direction)])
    return angle * ramp, ramp[:, None] * shift


def _finish_frame(
    frame: np.ndarray, gain: float, offset: float, noise_std: float, rng: np.random.Generator, grey: bool
) -> np.ndarray:
    """Flicker (``gain``, ``offset``), greyscale, sensor noise and 8-bit rounding of one frame."""
    frame = frame * np.float32(gain) + np.float32(offset + 0.5)  # + 0.5: the cast below truncates
    if grey:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None]
    if noise_std > 0:
        # Gaussian noise by table look-up (5x faster than standard_normal).
        noise = _NORMAL_QUANTILES[rng.integers(0, 256, frame.shape, dtype=np.uint8)]
        noise *= np.float32(noise_std)
        frame += noise
    np.clip(frame, 0, 255, out=frame)
    return np.broadcast_to(frame, (*frame.shape[:2], 3)).astype(np.uint8)


def render_clip(
    identity: Identity,
    field: np.ndarray,
    displacement: np.ndarray,
    rng: np.random.Generator,
    settings: SynthSettings | None = None,
    clean: bool = False,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Frames ``I_t(p) = N(H_t^-1(p) - displacement[t] * field(p) - j_t)`` -> (T, S, S, 3) uint8 RGB.

    ``displacement``: (T,) peak displacement in pixels per frame (``peak * s(t)``);
    ``field``: (S, S, 2) with max norm 1; ``H_t`` the rigid head drift (a rotation about
    the face's centre and a shift, :func:`_head_motion`), ``j_t`` the jitter.
    ``clean=True`` leaves out drift, jitter, flicker and noise (the frames are then
    the exact deformation, up to 8-bit rounding). ``extra``: a second (field,
    displacement) pair added to the first (a blink).
    """
    st = settings or SynthSettings()
    size = identity.size
    n = len(displacement)
    grid = np.arange(size, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    if clean:
        jitter, gain, offset, noise_std = np.zeros((n, 2)), np.ones(n), np.zeros(n), 0.0
        angles, shifts = np.zeros(n), np.zeros((n, 2))
    else:
        jitter = _smooth_walk(rng, n, st.jitter_px)
        gain = 1 + rng.normal(0.0, st.flicker, n)
        offset = rng.normal(0.0, 1.0, n)
        noise_std = rng.uniform(*st.noise_std)
        angles, shifts = _head_motion(rng, n, st)
    cx, cy = identity.landmarks.mean(0)
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        d = np.float32(displacement[t])
        c, s = np.float32(np.cos(angles[t])), np.float32(np.sin(angles[t]))
        rx = gx - np.float32(cx + shifts[t, 0])
        ry = gy - np.float32(cy + shifts[t, 1])
        x = (c * rx + s * ry + np.float32(cx)) - d * field[..., 0] - np.float32(jitter[t, 0])
        y = (c * ry - s * rx + np.float32(cy)) - d * field[..., 1] - np.float32(jitter[t, 1])
        if extra is not None and extra[1][t] != 0:
            x -= np.float32(extra[1][t]) * extra[0][..., 0]
            y -= np.float32(extra[1][t]) * extra[0][..., 1]
        frame = cv2.remap(
            identity.source, identity.source_coords(x, y), None, cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        frame = cv2.multiply(frame, identity.illumination)
        frames[t] = _finish_frame(frame, gain[t], offset[t], noise_std, rng, st.grey)
    return frames


@dataclass(frozen=True)
class ClipSpec:
    """One clip's drawn parameters (frame numbers are 1-based, as in the spreadsheet)."""

    subject: int
    clip: str
    expression: str
    emotion: str
    action_units: str
    peak_px: float
    n_frames: int
    onset: int
    apex: int
    offset: int
    shown: str = ""
    """The class whose motion the clip shows (differs from ``expression`` under label noise)."""
    motion_units: str | None = None
    """Action units rendered (``varied`` settings), None for the class prototype."""
    blink_px: float = 0.0
    """Peak eyelid displacement of a blink in the clip (0: none)."""
    blink_onset: int = 0
    blink_frames: int = 0
    """First frame (1-based) and duration of the blink."""


def _draw_variant(rng: np.random.Generator, expression: str, st: SynthSettings) -> tuple[str, str | None]:
    """The class a clip shows (label noise) and its action units (``varied``)."""
    shown = expression
    if st.label_noise > 0 and rng.random() < st.label_noise:
        shown = str(rng.choice([c for c in CLASSES if c != expression]))
    if not st.varied:
        return shown, None
    codes, weights = zip(*VARIANTS[shown], strict=True)
    return shown, str(rng.choice(codes, p=np.array(weights) / sum(weights)))


def _draw_blink(rng: np.random.Generator, n_frames: int, st: SynthSettings) -> dict:
    """A blink's ClipSpec fields (none drawn: empty), within frames 1..n_frames."""
    if st.blink <= 0 or rng.random() >= st.blink:
        return {}
    frames = int(min(rng.integers(st.blink_frames[0], st.blink_frames[1] + 1), n_frames - 1))
    return {
        "blink_px": float(rng.uniform(*st.blink_px)),
        "blink_onset": int(rng.integers(1, n_frames - frames + 1)),
        "blink_frames": frames,
    }


def draw_clip(rng: np.random.Generator, subject: int, name: str, expression: str, st: SynthSettings) -> ClipSpec:
    spec = EXPRESSIONS[expression]
    motion = int(rng.integers(st.motion_frames[0], st.motion_frames[1] + 1))
    lead = rng.integers(st.lead_frames[0], st.lead_frames[1] + 1, 2)
    onset = int(lead[0]) + 1
    offset = onset + motion - 1
    apex = onset + int(np.clip(round(rng.uniform(*st.apex_fraction) * (motion - 1)), 1, motion - 2))
    emotion = str(rng.choice(spec.emotions))
    peak = float(rng.uniform(*st.peak_px))
    shown, units = _draw_variant(rng, expression, st)
    n_frames = offset + int(lead[1])
    blink = _draw_blink(rng, n_frames, st)
    return ClipSpec(
        subject=subject,
        clip=name,
        expression=expression,
        emotion=emotion,
        action_units=spec.action_units if units is None else units,
        peak_px=peak,
        n_frames=n_frames,
        onset=onset,
        apex=apex,
        offset=offset,
        shown=shown,
        motion_units=units,
        **blink,
    )


def clip_frames(
    identity: Identity,
    spec: ClipSpec,
    rng: np.random.Generator,
    settings: SynthSettings,
    clean: bool = False,
    fields: dict | None = None,
) -> np.ndarray:
    """Render the clip ``spec`` of ``identity`` (T, S, S, 3) uint8; ``fields`` caches the
    subject's expression fields between its clips."""
    fields = {} if fields is None else fields
    key = (spec.shown or spec.expression, spec.motion_units)
    if key not in fields:
        fields[key] = expression_field(identity.landmarks, key[0], identity.size, key[1])
    profile = temporal_profile(spec.n_frames, spec.onset - 1, spec.apex - 1, spec.offset - 1)
    extra = None
    if spec.blink_px > 0:
        if "blink" not in fields:
            fields["blink"] = expression_field(identity.landmarks, key[0], identity.size, "45")
        first = spec.blink_onset - 1
        blink = temporal_profile(
            spec.n_frames, first, first + spec.blink_frames // 2, first + spec.blink_frames - 1
        )
        extra = (fields["blink"], spec.blink_px * blink)
    return render_clip(identity, fields[key], spec.peak_px * profile, rng, settings, clean, extra)


def write_clip(frames: np.ndarray, folder: Path, quality: int, pattern: str = "img{}.jpg") -> None:
    """Write ``pattern.format(1)``... (``img1.jpg``...) into a temporary folder, then rename it
    onto ``folder`` (:func:`~msmmt.core.io.atomic_folder`)."""
    with atomic_folder(folder) as tmp:
        for i, frame in enumerate(frames, start=1):
            ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise OSError(f"{folder}: JPEG encoding of frame {i} failed")
            (tmp / pattern.format(i)).write_bytes(buf.tobytes())


def previous_folders(out_dir: Path) -> list[Path]:
    """Subject folders of a synthetic set already in ``out_dir`` (to be replaced)."""
    meta = out_dir / META_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir():  # clips half-written by a killed run first
        remove_stale_temporaries(out_dir)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return []
    if not meta.is_file():
        raise FileExistsError(
            f"{out_dir}: folder is not empty and holds no {META_NAME}; "
            "choose an empty folder (or a previous synthetic set to overwrite)"
        )
    try:
        previous = json.loads(meta.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{meta}: not valid JSON ({err}); delete the folder to start afresh") from None
    # Only folders named as generate() (subNN) and generate_composite() (its parts, release
    # and cache) name them are ever removed.
    names = [*previous.get("landmarks", {}), *previous.get("folders", [])]
    return [out_dir / name for name in names if re.fullmatch(r"sub\d+|CASME2|SAMM|SMIC|release|cache", name)]


def claim_folder(out_dir: Path, folders: list[str]) -> None:
    """Make ``out_dir`` ready for a new set: remove the previous set's folders and write a
    provisional ``synthetic.json`` naming the ``folders`` this run will write, so that a run
    killed half-way is still recognised (and replaced) as a synthetic set by the next."""
    for folder in previous_folders(out_dir):
        shutil.rmtree(folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out_dir / META_NAME, {"generator": "msmmt synth", "complete": False, "folders": folders}
    )


def generate(
    out_dir: str | Path,
    subjects: int = 8,
    clips_per_subject: int = 6,
    seed: int = 0,
    size: int = 256,
    clean: bool = False,
    settings: SynthSettings | None = None,
    progress: bool = False,
) -> Path:
    """Write a synthetic CASME II-style set to ``out_dir``; return the coding sheet's path.

    ``subjects`` identities with ``clips_per_subject`` clips each, classes balanced
    within each subject (a seeded permutation of positive / negative / surprise, taken
    round-robin). ``clean=True`` leaves out jitter, flicker and noise. A previous
    synthetic set in ``out_dir`` is replaced; any other non-empty folder is refused.
    """
    import pandas as pd
    from tqdm import tqdm

    if subjects < 1 or clips_per_subject < 1:
        raise ValueError(f"need at least one subject and one clip, got {subjects} x {clips_per_subject}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if size < 160:
        raise ValueError(f"size must be >= 160 px for dlib to find the faces reliably, got {size}")
    st = settings or SynthSettings()
    out_dir = Path(out_dir)
    claim_folder(out_dir, [f"sub{s:02d}" for s in range(1, subjects + 1)])

    rows, clips, landmarks = [], [], {}
    bar = tqdm(total=subjects * clips_per_subject, desc="synth", unit="clip", disable=not progress)
    for s in range(1, subjects + 1):
        sub = f"sub{s:02d}"
        identity = make_identity(np.random.default_rng([seed, s, 0]), size, st)
        landmarks[sub] = np.round(identity.landmarks, 3).tolist()
        order = np.random.default_rng([seed, s, 1]).permutation(len(CLASSES))
        fields = {}
        for c in range(clips_per_subject):
            rng = np.random.default_rng([seed, s, 2, c])
            expression = CLASSES[order[c % len(CLASSES)]]
            spec = draw_clip(rng, s, f"EP{c + 1:02d}_01", expression, st)
            frames = clip_frames(identity, spec, rng, st, clean, fields)
            write_clip(frames, out_dir / sub / spec.clip, st.jpeg_quality)
            rows.append((s, spec.clip, spec.onset, spec.apex, spec.offset, spec.action_units, spec.emotion))
            clips.append(asdict(spec))
            bar.update()
    bar.close()

    sheet = out_dir / SHEET_NAME
    with atomic_path(sheet) as tmp:
        pd.DataFrame(rows, columns=list(COLUMNS)).to_excel(tmp, index=False, engine="openpyxl")
    meta = {
        "generator": "msmmt synth",
        "seed": seed,
        "subjects": subjects,
        "clips_per_subject": clips_per_subject,
        "size": size,
        "clean": clean,
        "settings": asdict(st),
        "clips": clips,
        "landmarks": landmarks,
        "environment": environment(),
    }
    atomic_write_json(out_dir / META_NAME, meta)
    return sheet
