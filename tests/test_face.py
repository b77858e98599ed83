"""Face alignment: eye corners on their targets, one transform per clip, no-face errors;
the detection cascade: each step finds the faces the earlier ones miss."""

import cv2
import numpy as np
import pytest
from skimage import data

from msmmt.config import PreprocessConfig
from msmmt.core.records import DatasetError
from msmmt.data.face_variants import VARIANTS, shrunk, tilted
from msmmt.data.synthetic import make_identity, render_clip
from msmmt.ops.face import (
    CASCADE,
    align_faces,
    alignment_matrix,
    face_landmarks,
    follow_face,
    upright_landmarks,
)
from msmmt.ops.landmarks import cnn_boxes, detect_landmarks, fit_landmarks, to_uint8_gray


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


# --- the detection cascade -------------------------------------------------------------


def _eye_error(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(found[[39, 42]] - truth[[39, 42]]).max())


@pytest.mark.parametrize(
    ("variant", "step", "tolerance"),
    [
        ("as-is", "hog", 1.5),
        ("shrunk", "hog-upsampled", 1.5),  # eye corners 14 px apart
        ("dark", "hog-equalized", 1.5),  # 4 % of the grey levels
        ("low-contrast", "hog-equalized", 1.5),
        ("tight-crop", "face-crop", 4.0),  # the crop cuts 10 % into the face, 224 px
        ("tilted", "cnn", 2.0),  # 50 degrees
    ],
)
def test_each_cascade_step_finds_the_face_its_predecessors_miss(astronaut_face, variant, step, tolerance):
    image, truth = VARIANTS[variant](*astronaut_face)
    found = face_landmarks(image)
    assert found is not None and found.step == step
    earlier = CASCADE[: CASCADE.index(step)]
    if earlier:
        assert face_landmarks(image, steps=earlier) is None
    assert _eye_error(found.landmarks, truth) < tolerance


def test_a_tilted_face_is_fitted_level_by_the_angle_search_and_the_upright_refit(astronaut_face):
    # dlib fitted in the CNN's box of a face tilted by 50 degrees finds a level-looking face;
    # the cnn step's angle search (where HOG sees the face upright) and the upright refit
    # from that fit each correct it
    image, truth = tilted(*astronaut_face, degrees=50.0)
    gray = to_uint8_gray(image)
    raw = fit_landmarks(gray, cnn_boxes(gray)[0])
    searched = face_landmarks(image, steps=["cnn"], upright=False, refine=False)
    assert _eye_error(raw, truth) > 5.0
    assert _eye_error(upright_landmarks(gray, raw), truth) < 2.0
    assert _eye_error(searched.landmarks, truth) < 2.0


def test_face_crop_step_refuses_what_is_not_a_face():
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), (0, 0), 3)
    for image in (noise, np.full((224, 224, 3), 128, np.uint8), data.astronaut()[300:500, 300:500]):
        assert face_landmarks(image, steps=["face-crop"]) is None


def test_alignment_reports_the_step_and_honours_the_configured_cascade(astronaut_face):
    image, _ = shrunk(*astronaut_face)
    aligned = align_faces(image[None], PreprocessConfig(face_size=64))
    assert aligned.face_step == "hog-upsampled"
    with pytest.raises(DatasetError, match="no face"):
        align_faces(image[None], PreprocessConfig(face_size=64, face_cascade=["hog"]))
    with pytest.raises(ValueError, match="repeats"):
        PreprocessConfig(face_cascade=["hog", "hog"])


def test_synthetic_identities_with_glasses_and_tight_crops_are_found():
    size = 256
    for s in range(2):
        identity = make_identity(np.random.default_rng([0, s, 0]), size)
        frame = render_clip(
            identity, np.zeros((size, size, 2), np.float32), np.zeros(1), np.random.default_rng(0), clean=True
        )[0]
        for variant, step in (("glasses", "hog"), ("tight-crop", "face-crop")):
            image, truth = VARIANTS[variant](frame, identity.landmarks)
            found = face_landmarks(image)
            assert found is not None and found.step == step, (s, variant)
            assert _eye_error(found.landmarks, truth) < 12.0  # glasses pull dlib's eye points


def _placed(face: np.ndarray, x: int, y: int) -> np.ndarray:
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
    return canvas


@pytest.mark.parametrize(
    ("variant", "shift"),
    [
        ("as-is", (30, 20)),  # moved: HOG's box overlapping the last one
        ("as-is", (300, 140)),  # a cut: no box overlaps, HOG's best box is the face
        ("dark", (12, 8)),  # HOG misses it: refitted from where it was
    ],
)
def test_follow_face_finds_the_face_where_it_went(astronaut_face, variant, shift):
    face, landmarks = VARIANTS[variant](*astronaut_face)
    face = face[:, :300]  # fits the canvas at every shift
    before = landmarks + [10, 10]
    after = follow_face(_placed(face, 10 + shift[0], 10 + shift[1]), before)
    assert _eye_error(after, before + shift) < 2.0
