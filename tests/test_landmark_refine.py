"""The canonical second landmark pass (msmmt.ops.landmark_refine)."""

from __future__ import annotations

import numpy as np

from msmmt.data.face_variants import dark
from msmmt.ops.landmark_refine import canonical_similarity, refine_landmarks
from msmmt.ops.landmarks import fit_landmarks, to_uint8_gray


def _eyes(points: np.ndarray) -> np.ndarray:
    return points[[39, 42]]


def test_canonical_similarity_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (51, 2))
    angle, scale, shift = np.deg2rad(25.0), 1.7, np.array([12.0, -30.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = points @ rot.T + shift
    matrix = canonical_similarity(points, target + rng.normal(0, 0.01, target.shape))
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-3)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=0.05)


def test_refit_does_not_depend_on_where_the_first_fit_put_the_face(astronaut_face):
    # a first fit off by 4 px and 8 % in scale (another detector's box) refines to the same
    # corners: the canonical crop is placed from the fit, whichever detector fired
    image, truth = astronaut_face
    centre = truth.mean(0)
    moved = (truth - centre) * 1.08 + centre + [4.0, 4.0]
    refined = refine_landmarks(image, truth)
    assert np.abs(_eyes(moved) - _eyes(truth)).max() > 4.0
    assert np.abs(_eyes(refine_landmarks(image, moved)) - _eyes(refined)).max() < 1.0
    assert np.abs(_eyes(refined) - _eyes(truth)).max() < 1.5


def test_refit_normalises_the_contrast_of_a_dark_face(astronaut_face):
    # 4 % of the grey levels: dlib on the raw frame loses the eyes; the refit finds them
    image, truth = dark(*astronaut_face)
    gray = to_uint8_gray(image)
    raw = fit_landmarks(gray, np.r_[truth.min(0), truth.max(0)])
    refined = refine_landmarks(image, truth)
    assert np.abs(_eyes(raw) - _eyes(truth)).max() > 3.0
    assert np.abs(_eyes(refined) - _eyes(truth)).max() < 1.5
    # and the refit's coordinates are sub-pixel (mapped back from the canonical crop)
    assert not np.allclose(refined, np.round(refined))
