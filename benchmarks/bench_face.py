"""Face detection cascade: detection rate and inner-eye-corner error per condition.

Faces: skimage's astronaut and ``--identities`` synthetic identities (neutral frames of
:mod:`msmmt.data.synthetic`), each under every variant of
:mod:`msmmt.data.face_variants` (as-is, tight crop, shrunk, dark, low contrast,
tilted 50 degrees, glasses). Two detectors in the same run:

- ``before``: what msmmt did before the cascade (HOG, then HOG upsampled, largest box,
  no upright refit);
- ``cascade``: :func:`msmmt.ops.face.face_landmarks` with every step;
- ``cascade, no upright refit``: the same without :func:`msmmt.ops.face.upright_landmarks`
  (the ablation of that step).

Error: the clip is aligned from the found landmarks (``face_size`` 224) and the true
inner eye corners (39, 42) are mapped by the same transform; the error is their
distance, in pixels of the 224 px crop, from where alignment put them. Target: every
face found, eye corners within 2 px. Run: ``.venv/bin/python benchmarks/bench_face.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.config import PreprocessConfig  # noqa: E402
from msmmt.data.face_variants import VARIANTS  # noqa: E402
from msmmt.data.synthetic import make_identity, render_clip  # noqa: E402
from msmmt.ops.face import FaceDetection, alignment_matrix, face_landmarks  # noqa: E402
from msmmt.ops.landmarks import detect_landmarks  # noqa: E402


def before(image: np.ndarray) -> FaceDetection | None:
    for upsample, step in ((0, "hog"), (1, "hog-upsampled")):
        found = detect_landmarks(image, upsample=upsample)
        if found is not None:
            return FaceDetection(found, step)
    return None


def faces(identities: int, size: int = 256) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from skimage.data import astronaut

    image = astronaut()
    out = [("astronaut", image, detect_landmarks(image))]
    for s in range(identities):
        identity = make_identity(np.random.default_rng([0, s, 0]), size)
        still = np.zeros((size, size, 2), np.float32)
        frame = render_clip(identity, still, np.zeros(1), np.random.default_rng(s))[0]
        out.append((f"id{s}", frame, identity.landmarks))
    return out


def eye_error(found: np.ndarray, truth: np.ndarray, cfg: PreprocessConfig) -> float:
    """Distance (224 px crop) between where alignment puts the eye corners and the truth."""
    matrix = alignment_matrix(found, cfg.face_size, cfg.eye_distance, cfg.face_margin)
    ids = [39, 42]
    mapped = truth[ids] @ matrix[:, :2].T + matrix[:, 2]
    placed = found[ids] @ matrix[:, :2].T + matrix[:, 2]
    return float(np.linalg.norm(mapped - placed, axis=1).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=10)
    args = parser.parse_args()
    cfg = PreprocessConfig(face_size=224)
    people = faces(args.identities)
    rows = []
    for variant, make in VARIANTS.items():
        detectors = (
            ("before", before),
            ("cascade", face_landmarks),
            ("cascade, no upright refit", partial(face_landmarks, upright=False)),
        )
        for name, detector in detectors:
            errors, steps, seconds = [], Counter(), 0.0
            for _, image, landmarks in people:
                img, truth = make(image, landmarks)
                start = time.perf_counter()
                found = detector(img)
                seconds += time.perf_counter() - start
                steps[found.step if found else "none"] += 1
                if found is not None:
                    errors.append(eye_error(found.landmarks, truth, cfg))
            err = np.array(errors) if errors else np.array([np.nan])
            rows.append(
                {
                    "condition": variant,
                    "detector": name,
                    "faces": len(people),
                    "found": len(errors),
                    "eye_err_median_px": float(np.median(err)),
                    "eye_err_max_px": float(np.max(err)),
                    "within_2px": int(np.sum(err <= 2.0)),
                    "ms_per_face": 1000 * seconds / len(people),
                    "steps": " ".join(f"{k}:{v}" for k, v in sorted(steps.items())),
                }
            )
    record("bench_face", rows)


if __name__ == "__main__":
    main()
