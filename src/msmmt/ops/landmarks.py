"""68-point facial landmarks with dlib (frontal HOG detector + shape predictor).

The predictor file ``shape_predictor_68_face_landmarks.dat`` ships with the
``face-recognition-models`` package; it is found with :func:`importlib.util.find_spec`
(that package's own helper imports ``pkg_resources``, which current setuptools
no longer provides). Detector and predictor are loaded once per process.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["LEFT_INNER_EYE", "RIGHT_INNER_EYE", "detect_landmarks", "predictor_path"]

LEFT_INNER_EYE = 39
"""0-based index of the inner corner of the eye on the image's left (subject's right)."""
RIGHT_INNER_EYE = 42
"""0-based index of the inner corner of the eye on the image's right."""


def predictor_path() -> Path:
    """Path of dlib's 68-landmark model inside ``face_recognition_models``."""
    # find_spec locates the package without running its __init__ (which imports pkg_resources).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face_recognition_models is not installed (pip install face-recognition-models)")
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


@lru_cache(maxsize=1)
def _models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def _to_uint8_gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def detect_landmarks(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """Landmarks of the largest face in ``image`` (H x W grey or H x W x 3 RGB, uint8).

    Returns a (68, 2) float array of (x, y) pixel coordinates, or None when no
    face is found.
    """
    import dlib

    detector, predictor = _models()
    gray = _to_uint8_gray(image)
    faces = detector(gray, upsample)
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(gray, dlib.rectangle(face.left(), face.top(), face.right(), face.bottom()))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
