"""68-point facial landmarks with dlib: face detectors and the shape predictor.

The model files ``shape_predictor_68_face_landmarks.dat`` and
``mmod_human_face_detector.dat`` (dlib's CNN face detector) ship with the
``face-recognition-models`` package; they are found with
:func:`importlib.util.find_spec` (that package's own helper imports ``pkg_resources``,
which current setuptools no longer provides), never downloaded. Each model is loaded
once per process, the CNN only when first used.

Boxes are ``(left, top, right, bottom, score)`` in pixels of the searched image;
the cascade that combines the detectors is :func:`msmmt.ops.face.face_landmarks`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "LEFT_INNER_EYE",
    "RIGHT_INNER_EYE",
    "cnn_boxes",
    "detect_landmarks",
    "fit_landmarks",
    "hog_boxes",
    "model_path",
    "predictor_path",
    "to_uint8_gray",
]

LEFT_INNER_EYE = 39
"""0-based index of the inner corner of the eye on the image's left (subject's right)."""
RIGHT_INNER_EYE = 42
"""0-based index of the inner corner of the eye on the image's right."""

Box = tuple[float, float, float, float, float]


def model_path(name: str) -> Path:
    """Path of one of dlib's model files inside ``face_recognition_models``."""
    # find_spec locates the package without running its __init__ (which imports pkg_resources).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "face_recognition_models is not installed (pip install face-recognition-models)"
        )
    return Path(spec.submodule_search_locations[0]) / "models" / name


def predictor_path() -> Path:
    """Path of dlib's 68-landmark model."""
    return model_path("shape_predictor_68_face_landmarks.dat")


@lru_cache(maxsize=1)
def _models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


@lru_cache(maxsize=1)
def _cnn():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path("mmod_human_face_detector.dat")))


def to_uint8_gray(image: np.ndarray) -> np.ndarray:
    """H x W grey or H x W x 3 RGB -> contiguous H x W uint8 grey (ITU-R 601 weights)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def hog_boxes(gray: np.ndarray, upsample: int = 0, threshold: float = 0.0) -> list[Box]:
    """Faces found by dlib's frontal HOG detector in a uint8 grey image, best first.

    ``threshold`` shifts the detector's decision threshold (negative finds weaker faces).
    """
    detector, _ = _models()
    rects, scores, _ = detector.run(gray, upsample, threshold)
    boxes = [(r.left(), r.top(), r.right(), r.bottom(), s) for r, s in zip(rects, scores, strict=True)]
    return sorted(boxes, key=lambda b: -b[4])


def cnn_boxes(gray: np.ndarray, upsample: int = 0) -> list[Box]:
    """Faces found by dlib's CNN (MMOD) detector in a uint8 grey image, best first."""
    found = _cnn()(gray, upsample)
    boxes = [
        (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence) for d in found
    ]
    return sorted(boxes, key=lambda b: -b[4])


def fit_landmarks(gray: np.ndarray, box: Box | tuple[float, float, float, float]) -> np.ndarray:
    """The 68 landmarks fitted in ``box`` (left, top, right, bottom[, score]): (68, 2) (x, y)."""
    import dlib

    _, predictor = _models()
    rect = dlib.rectangle(*(int(round(v)) for v in box[:4]))
    shape = predictor(gray, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def detect_landmarks(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """Landmarks of the largest face HOG finds in ``image`` (H x W grey or H x W x 3 RGB, uint8).

    Returns a (68, 2) float array of (x, y) pixel coordinates, or None when no
    face is found.
    """
    gray = to_uint8_gray(image)
    boxes = hog_boxes(gray, upsample)
    if not boxes:
        return None
    return fit_landmarks(gray, max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])))
