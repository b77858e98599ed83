"""Shared test settings: one torch thread and no network.

The test models are tiny, so thread start-up costs more than it saves: on the
2-core CI machine one thread ran a tiny LOSO ~30x faster than two under load.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def astronaut_face():
    """The astronaut cropped around her face (faster detection), with her 68 landmarks."""
    from skimage import data

    from msmmt.ops.landmarks import detect_landmarks

    image = data.astronaut()[0:320, 60:380].copy()
    landmarks = detect_landmarks(image)
    assert landmarks is not None
    return image, landmarks
