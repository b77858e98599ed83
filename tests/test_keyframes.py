"""One key-frame rule for the readers, the preprocessing and the predictor."""

import numpy as np
import pytest

from msmmt.config import PreprocessConfig
from msmmt.core.keyframes import KeyFrames, key_frame_positions, resolve_marks, sample_key_frames
from msmmt.core.records import DatasetError, Sample
from msmmt.preprocess.clip import process_clip


def test_numbers_become_positions_after_the_rule():
    numbers = (10, 11, 20, 30)  # a gap: frame 20 is the one closest to (10 + 30) / 2
    assert key_frame_positions(numbers, None, None, None, "c") == KeyFrames(0, 2, 3)
    assert key_frame_positions(numbers, 11, 30, 30, "c") == KeyFrames(1, 3, 3)
    assert KeyFrames(1, 3, 3).relative() == KeyFrames(0, 2, 2)
    # counted from 0, the middle of onset..offset is (onset + offset) // 2, the lower on a tie
    assert key_frame_positions(range(8), 1, None, 6, "c") == KeyFrames(1, 3, 6)
    # an offset past the last frame is the last frame, and the rule says so
    *_, assumed = resolve_marks(numbers, 10, None, 99, "c")
    assert "offset 99 is past the last frame" in assumed[0]


def test_a_sample_and_an_array_of_frames_follow_the_same_rule():
    sample = Sample("d", "d/s", "c", "", frame_numbers=(3, 4, 5, 6, 7), onset=4, offset=7)
    assert sample_key_frames(sample) == KeyFrames(1, 2, 4)  # apex: frame 5 (of 4..7, lower)
    assert key_frame_positions(range(5), 1, None, 4, "c") == sample_key_frames(sample)


@pytest.mark.parametrize(
    ("onset", "apex", "offset", "message"),
    [
        (0, 4, 3, r"apex frame 4 is outside onset..offset \(0..3\)"),  # once "extended" the clip
        (3, 1, None, r"apex frame 1 is outside onset..offset \(3..4\)"),
        (4, None, 2, "onset frame 4 is after offset frame 2"),
        (-1, None, None, r"onset frame -1 is not among the clip.s frames 0..4"),
    ],
)
def test_bad_key_frames_are_errors_everywhere(onset, apex, offset, message):
    with pytest.raises(DatasetError, match="clip9: " + message):
        key_frame_positions(range(5), onset, apex, offset, "clip9")
    frames = np.zeros((5, 40, 40, 3), np.uint8)
    with pytest.raises(DatasetError, match="clip9: " + message):
        process_clip(frames, onset, apex, PreprocessConfig(), offset_idx=offset, clip="clip9")
