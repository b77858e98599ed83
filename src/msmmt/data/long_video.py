"""Long synthetic videos with ground truth, for micro-expression spotting (``msmmt spot``).

One synthetic subject (:func:`msmmt.data.synthetic.make_identity`) is filmed for
``seconds`` at ``fps``. Over the video, separated by neutral gaps, happen:

- micro-expressions (the ground truth to spot): one of the three expression fields of
  :mod:`msmmt.data.synthetic`, raised-cosine onset -> apex -> offset
  (:func:`~msmmt.data.synthetic.temporal_profile`) lasting ``micro_seconds``
  (under 0.5 s), peak ``micro_px``;
- macro-expressions (distractors): the same fields, larger (``macro_px``), with a
  hold: rise, plateau, fall, ``macro_seconds`` in all (over 0.5 s);
- head motion (distractors): the head moves (shift and rotation about the face's
  centre) to a new pose within ``head_seconds`` and stays there, or nods (moves and
  comes back);
- blinks (distractors, at any time, also during other events): the upper eyelids
  close and open within ``blink_seconds``;
- optionally (``drift_px`` > 0), a slow drift of the whole head across the frame, on top
  of everything else: ``drift_px * (1 - cos(pi t / (T - 1))) / 2`` pixels along a random
  direction, so the face ends ``drift_px`` from where it started (a face box fixed on the
  first frame then no longer holds the face; ``msmmt spot`` has to follow it).

Frame t is ``I_t(p) = N(p - D_t(p))`` with the displacement field
``D_t(p) = sum_e d_e(t) F_e(p - h_t) + H_t(p)`` (``H_t`` the head's rigid motion, ``h_t`` its
shift: the expressions and blinks move with the head; its few degrees of rotation are
not carried), rendered by
:func:`~msmmt.data.synthetic.render_clip` (flicker and sensor noise included; head
jitter is replaced by the head motion). :func:`write_long_video` writes an MJPG AVI
and ``<video>.truth.csv`` (kind, onset, apex, offset; frame numbers from 0, as
``msmmt spot`` numbers a video's frames).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from msmmt.core.io import atomic_path
from msmmt.core.records import DatasetError
from msmmt.data.synthetic import (
    CLASSES,
    Identity,
    SynthSettings,
    expression_field,
    gaussian_field,
    make_identity,
    render_clip,
    temporal_profile,
)

__all__ = [
    "Event",
    "LongVideoSettings",
    "TRUTH_COLUMNS",
    "draw_events",
    "drift_path",
    "event_profile",
    "read_truth",
    "render_frames",
    "write_long_video",
]

TRUTH_COLUMNS = ("kind", "onset", "apex", "offset")
KINDS = ("micro", "macro", "head", "nod", "blink")


@dataclass(frozen=True)
class LongVideoSettings:
    """What a long synthetic video contains (durations in seconds, pixels at ``size``)."""

    fps: float = 30.0
    seconds: float = 60.0
    size: int = 192
    micro_per_minute: float = 8.0
    macro_per_minute: float = 4.0
    head_per_minute: float = 4.0
    """Head moves and nods together, half each on average."""
    blinks_per_minute: float = 12.0
    micro_seconds: tuple[float, float] = (0.2, 0.5)
    micro_px: tuple[float, float] = (1.0, 3.0)
    macro_seconds: tuple[float, float] = (1.2, 3.5)
    macro_px: tuple[float, float] = (4.0, 8.0)
    head_seconds: tuple[float, float] = (0.3, 1.0)
    head_px: tuple[float, float] = (2.0, 8.0)
    head_deg: tuple[float, float] = (1.0, 4.0)
    blink_seconds: tuple[float, float] = (0.1, 0.3)
    gap_seconds: tuple[float, float] = (0.8, 3.0)
    """Neutral time between two events (blinks excepted)."""
    noise_std: tuple[float, float] = (1.0, 2.5)
    flicker: float = 0.01
    drift_px: float = 0.0
    """Slow drift of the head over the whole video (pixels from the first to the last frame,
    random direction; 0: none)."""

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError(f"fps and seconds must be positive, got {self.fps}, {self.seconds}")
        if not 0 <= self.drift_px <= self.size / 3:
            raise ValueError(f"drift_px must be in 0..size/3 (the face stays in the frame), got {self.drift_px}")
        if self.size < 160:
            raise ValueError(f"size must be >= 160 px for dlib to find the face, got {self.size}")


@dataclass(frozen=True)
class Event:
    """One thing that happens in the video: frames ``onset..offset`` (0-based), peak at ``apex``."""

    kind: str
    onset: int
    apex: int
    offset: int
    expression: str = ""
    peak: float = 0.0
    """Peak displacement (px) of an expression, eyelid travel of a blink, head shift."""
    angle: float = 0.0
    """Head rotation (degrees) of a head move or nod."""
    direction: tuple[float, float] = (0.0, 0.0)


def _frames(rng: np.random.Generator, seconds: tuple[float, float], fps: float) -> int:
    return max(3, int(round(rng.uniform(*seconds) * fps)))


def _event(rng: np.random.Generator, kind: str, start: int, st: LongVideoSettings) -> Event:
    span = {"micro": st.micro_seconds, "macro": st.macro_seconds}.get(kind, st.head_seconds)
    n = _frames(rng, span, st.fps)
    offset = start + n - 1
    if kind in ("micro", "macro"):
        apex = start + int(np.clip(round(rng.uniform(0.35, 0.6) * (n - 1)), 1, n - 2))
        peak = rng.uniform(*(st.micro_px if kind == "micro" else st.macro_px))
        return Event(kind, start, apex, offset, str(rng.choice(CLASSES)), float(peak))
    angle = rng.uniform(*st.head_deg) * rng.choice([-1, 1])
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    apex = offset if kind == "head" else (start + offset) // 2
    peak = float(rng.uniform(*st.head_px))
    return Event(kind, start, apex, offset, "", peak, float(angle), tuple(direction.tolist()))


def draw_events(rng: np.random.Generator, st: LongVideoSettings) -> list[Event]:
    """Expressions and head motions one after the other with neutral gaps, and blinks at
    random times (a Poisson process), sorted by onset."""
    total = int(round(st.seconds * st.fps))
    rates = {
        "micro": st.micro_per_minute,
        "macro": st.macro_per_minute,
        "head": st.head_per_minute / 2,
        "nod": st.head_per_minute / 2,
    }
    kinds, weights = list(rates), np.array(list(rates.values()))
    events: list[Event] = []
    t = _frames(rng, st.gap_seconds, st.fps)
    while weights.sum() > 0:
        event = _event(rng, str(rng.choice(kinds, p=weights / weights.sum())), t, st)
        if event.offset >= total - 1:
            break
        events.append(event)
        t = event.offset + 1 + _frames(rng, st.gap_seconds, st.fps)
    blink_gap = 60.0 / st.blinks_per_minute if st.blinks_per_minute > 0 else np.inf
    t = rng.exponential(blink_gap) * st.fps
    while t < total:
        n = _frames(rng, st.blink_seconds, st.fps)
        start = int(t)
        if start + n < total:
            events.append(Event("blink", start, start + n // 2, start + n - 1, peak=1.0))
        t += n + rng.exponential(blink_gap) * st.fps
    return sorted(events, key=lambda e: e.onset)


def _blink_field(identity: Identity) -> np.ndarray:
    """Upper eyelids (37, 38 and 43, 44) moving onto the lower ones (41, 40 and 47, 46)."""
    lm = identity.landmarks
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    travel = lm[lower] - lm[upper]
    eye = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    sigmas = np.full(4, 0.12 * eye)
    return gaussian_field(identity.size, lm[upper], 0.8 * travel, sigmas)


def event_profile(event: Event, n: int) -> np.ndarray:
    """d_e(t) in [0, 1] over frames 0..n-1 (outside the event's frames: 0, or 1 after a move)."""
    t = np.arange(n)
    if event.kind == "head":  # a raised-cosine step to the new pose, kept
        rise = temporal_profile(n + 1, event.onset, event.offset, event.offset + 1)[:n]
        return np.where(t >= event.offset, 1.0, rise)
    if event.kind == "macro":  # rise to the apex, hold, fall
        hold_end = event.apex + (event.offset - event.apex) // 2
        rise = temporal_profile(n + 2, event.onset, event.apex, event.apex + 1)[:n]
        fall = temporal_profile(n + 2, hold_end - 1, hold_end, event.offset)[:n]
        return np.where(t <= event.apex, rise, np.where(t <= hold_end, 1.0, fall))
    return temporal_profile(n, event.onset, event.apex, event.offset)


def _translated(field: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``field(p - shift)``: a displacement field (S, S, 2) carried along by the head's shift."""
    matrix = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], np.float32)
    size = field.shape[1], field.shape[0]
    return cv2.warpAffine(field, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _head_field(size: int, centre: np.ndarray, shift: np.ndarray, degrees: float) -> np.ndarray:
    """The rigid motion ``p -> R (p - c) + c + shift`` as a displacement field (size, size, 2)."""
    grid = np.arange(size, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    a = np.deg2rad(degrees)
    x, y = gx - centre[0], gy - centre[1]
    dx = (np.cos(a) - 1) * x - np.sin(a) * y + shift[0]
    dy = np.sin(a) * x + (np.cos(a) - 1) * y + shift[1]
    return np.dstack([dx, dy]).astype(np.float32)


def drift_path(rng: np.random.Generator, n_frames: int, drift_px: float) -> np.ndarray:
    """(n_frames, 2) head drift: ``drift_px (1 - cos(pi t / (T - 1))) / 2`` along a random
    direction (0 at the first frame, ``drift_px`` at the last)."""
    angle = rng.uniform(0.0, 2 * np.pi)
    ramp = (1 - np.cos(np.pi * np.arange(n_frames) / max(n_frames - 1, 1))) / 2
    return drift_px * ramp[:, None] * np.array([np.cos(angle), np.sin(angle)])


def render_frames(
    identity: Identity, events: list[Event], n_frames: int, rng: np.random.Generator, st: LongVideoSettings
) -> Iterator[np.ndarray]:
    """Frames (S, S, 3) uint8 RGB of the video, one at a time (module docstring)."""
    fields = {e: expression_field(identity.landmarks, e, identity.size) for e in CLASSES}
    blink = _blink_field(identity)
    profiles = [(e, event_profile(e, n_frames)) for e in events]
    centre = identity.landmarks.mean(0)
    frame_settings = SynthSettings(noise_std=st.noise_std, flicker=st.flicker, jitter_px=0.0)
    drift = drift_path(rng, n_frames, st.drift_px) if st.drift_px else np.zeros((n_frames, 2))
    for t in range(n_frames):
        field = np.zeros((identity.size, identity.size, 2), np.float32)
        shift, angle = drift[t].copy(), 0.0
        for event, profile in profiles:
            d = profile[t]
            if d == 0:
                continue
            if event.kind in ("micro", "macro"):
                field += np.float32(d * event.peak) * fields[event.expression]
            elif event.kind == "blink":
                field += np.float32(d) * blink
            else:
                shift += d * event.peak * np.array(event.direction)
                angle += d * event.angle
        if shift.any():  # the expressions and blinks move with the head
            field = _translated(field, shift)
        if angle or shift.any():
            field += _head_field(identity.size, centre, shift, angle)
        yield render_clip(identity, field, np.ones(1), rng, frame_settings)[0]


def write_long_video(
    path: str | Path, settings: LongVideoSettings | None = None, seed: int = 0
) -> tuple[Path, list[Event]]:
    """Write the video (MJPG AVI at ``settings.fps``) and ``<path>.truth.csv``; return the
    truth file and every event (the truth file lists them all, ``kind`` tells which)."""
    st = settings or LongVideoSettings()
    path = Path(path)
    identity = make_identity(np.random.default_rng([seed, 0]), st.size)
    events = draw_events(np.random.default_rng([seed, 1]), st)
    n = int(round(st.seconds * st.fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(
            str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), st.fps, (st.size, st.size)
        )
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write an MJPG AVI here")
        try:
            for frame in render_frames(identity, events, n, np.random.default_rng([seed, 2]), st):
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        finally:
            writer.release()
    truth = path.with_name(path.name + ".truth.csv")
    with atomic_path(truth) as tmp, tmp.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(TRUTH_COLUMNS)
        out.writerows((e.kind, e.onset, e.apex, e.offset) for e in events)
    return truth, events


def read_truth(path: str | Path, kind: str = "micro") -> np.ndarray:
    """(N, 2) onset and offset of the intervals in a CSV file with ``onset`` and ``offset``
    columns (e.g. a ``.truth.csv``); with a ``kind`` column, only the rows of ``kind``.

    Raises DatasetError naming the file when it cannot be read as such.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"onset", "offset"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{path}: no column(s) {', '.join(sorted(missing))}")
            rows = [r for r in reader if r.get("kind", kind) == kind]
            out = [(int(r["onset"]), int(r["offset"])) for r in rows]
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{path}: not a CSV of integer onset, offset columns ({err})") from None
    return np.array(out, dtype=int).reshape(-1, 2)
