"""Motion signals within a clip (``msmmt.ops.motion_signal``): the deviation signal against
hand-computed values, key frames of a known profile, the apex of synthetic clips with
known marks."""

from __future__ import annotations

import numpy as np

from msmmt.config import PreprocessConfig
from msmmt.core.keyframes import sample_key_frames
from msmmt.data.readers import load_frames, read_dataset
from msmmt.data.synthetic import generate, temporal_profile
from msmmt.ops.face import align_faces
from msmmt.ops.motion_signal import (
    clip_key_frames,
    deviation_signal,
    key_frames,
    region_mask,
    smooth,
)


def test_deviation_signal_and_smoothing():
    images = np.zeros((4, 2, 2), np.float32)
    images[2] = [[1, -1], [3, 0]]
    mask = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(deviation_signal(images, mask), [0, 0, 5 / 3, 0])
    np.testing.assert_allclose(smooth(np.array([0, 3, 0, 3.0]), 3), [1.5, 1, 2, 1.5])
    # a window wider than the signal: one value per frame, each the mean of those that exist
    np.testing.assert_allclose(smooth(np.array([0, 3.0]), 3), [1.5, 1.5])
    np.testing.assert_allclose(smooth(np.array([0, 3.0, 6.0]), 7), [3, 3, 3])


def test_key_frames_of_a_raised_cosine_profile():
    profile = temporal_profile(40, 5, 17, 33)
    noisy = profile + np.random.default_rng(0).normal(0, 0.01, 40)
    found = key_frames(noisy, fraction=0.2, width=3)
    assert found.apex == 17
    # s(t) = 0.2 at t - onset = (apex - onset) acos(0.6) / pi, and the mirror after the apex
    rise = 12 * np.arccos(0.6) / np.pi
    assert abs(found.onset - (5 + rise)) <= 1.5
    assert abs(found.offset - (33 - 16 * np.arccos(0.6) / np.pi)) <= 1.5


def test_region_mask_covers_brows_nose_mouth_and_not_the_eyes():
    landmarks = np.zeros((68, 2))
    landmarks[:] = (90, 90)
    landmarks[36:48] = (30, 30)  # eyes far from everything else
    landmarks[17:27] = (50, 10)
    mask = region_mask(landmarks, (100, 100), 3)
    assert mask[10, 50] and mask[90, 90] and not mask[30, 30]


def test_apex_of_synthetic_clips_is_found_within_three_frames(tmp_path):
    generate(tmp_path, subjects=2, clips_per_subject=3, seed=3, size=192)
    cfg = PreprocessConfig(face_size=192)
    errors, middle = [], []
    for sample in read_dataset("synthetic", tmp_path):  # the sheet's marks are the truth
        frames = load_frames(sample)
        faces = align_faces(frames, cfg)
        found = clip_key_frames(faces.frames, faces.landmarks)
        apex = sample_key_frames(sample).apex
        errors.append(abs(found.apex - apex))
        middle.append(abs((len(frames) - 1) // 2 - apex))
    assert np.median(errors) <= 3 and max(errors) <= 6, errors
    assert np.mean(errors) < np.mean(middle), (errors, middle)
