"""Face alignment: eye corners on their targets, one transform per clip, no-face errors."""

import cv2
import numpy as np
import pytest
from skimage import data

from msmmt.config import PreprocessConfig
from msmmt.core.records import DatasetError
from msmmt.ops.face import align_faces, alignment_matrix
from msmmt.ops.landmarks import detect_landmarks


def _rotated_astronaut(degrees: float) -> np.ndarray:
    image = data.astronaut()
    matrix = cv2.getRotationMatrix2D((256.0, 256.0), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)


def test_rotated_face_lands_with_inner_eye_corners_on_their_targets():
    cfg = PreprocessConfig(face_size=224)
    aligned = align_faces(_rotated_astronaut(7.0)[None], cfg)
    assert aligned.frames.shape == (1, 224, 224, 3) and aligned.frames.dtype == np.uint8
    # Fixed columns S/2 -+ e S / 2, one common row (the eyes are level after alignment).
    half = cfg.eye_distance * cfg.face_size / 2
    np.testing.assert_allclose(aligned.eye_targets[:, 0], [112 - half, 112 + half], atol=1e-9)
    assert aligned.eye_targets[0, 1] == pytest.approx(aligned.eye_targets[1, 1])
    found = detect_landmarks(aligned.frames[0])
    assert found is not None
    error = np.abs(found[[39, 42]] - aligned.eye_targets)
    assert error.max() < 1.5, error
    # The whole face (all 68 aligned landmarks, brows to chin) is inside the crop.
    assert aligned.landmarks.min() >= 0 and aligned.landmarks.max() <= 224


def test_alignment_matrix_is_the_similarity_onto_the_targets():
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 300, (68, 2))
    points[39], points[42] = (180.0, 200.0), (230.0, 185.0)
    size, e, margin = 128, 0.25, 0.1
    matrix = alignment_matrix(points, size, e, margin)
    a, b, c, d = matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]
    assert a == pytest.approx(d) and b == pytest.approx(-c)  # rotation and uniform scale
    scale = np.hypot(a, c)
    assert scale == pytest.approx(e * size / np.hypot(50.0, -15.0))
    out = points @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(out[[39, 42], 0], [size / 2 - e * size / 2, size / 2 + e * size / 2])
    assert out[39, 1] == pytest.approx(out[42, 1])
    height = out[:, 1].max() - out[:, 1].min()
    assert out[:, 1].min() == pytest.approx(margin * height)  # crop starts a margin above the box


def test_one_transform_from_the_first_frame_with_a_face_is_applied_to_every_frame():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    landmarks = rng.uniform(20, 50, (68, 2))
    landmarks[39], landmarks[42] = (30.0, 25.0), (45.0, 27.0)
    calls = []

    def fake(frame):  # no face in frame 0, a face in frames 1..
        calls.append(frame)
        return None if len(calls) == 1 else landmarks

    cfg = PreprocessConfig(face_size=32)
    aligned = align_faces(frames, cfg, landmarks_fn=fake)
    assert aligned.detected_frame == 1 and len(calls) == 2
    assert aligned.frames.shape == (4, 32, 32, 3)
    expected = alignment_matrix(landmarks, 32, cfg.eye_distance, cfg.face_margin)
    np.testing.assert_allclose(aligned.matrix, expected)
    for src, out in zip(frames, aligned.frames, strict=True):
        ref = cv2.warpAffine(src, expected, (32, 32), borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_array_equal(out, ref)


def test_no_face_raises_dataset_error_naming_the_clip():
    cfg = PreprocessConfig(face_size=32, face_search_frames=3)
    calls = []
    frames = np.zeros((5, 40, 40, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"sub07/EP01.*no face.*3 frame"):
        align_faces(frames, cfg, landmarks_fn=lambda f: calls.append(f), clip="sub07/EP01")
    assert len(calls) == 3
    with pytest.raises(DatasetError, match="grey-clip"):  # real dlib on a blank clip
        align_faces(np.full((2, 120, 120, 3), 128, np.uint8), cfg, clip="grey-clip")


def test_align_off_only_resizes():
    frames = np.random.default_rng(2).integers(0, 255, (2, 50, 70, 3), dtype=np.uint8)
    aligned = align_faces(frames, PreprocessConfig(face_size=32, align=False))
    assert aligned.landmarks is None and aligned.frames.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(
        aligned.frames[1], cv2.resize(frames[1], (32, 32), interpolation=cv2.INTER_AREA)
    )
