"""Key frames of a clip: the one rule for onset, apex and offset, and their positions.

Every part of msmmt that needs a clip's key frames goes through here: the dataset
readers (annotation sheets, unlabelled clips), the preprocessing and the predictor
(``docs/METHOD.md``, "Key frames"). The rule, on the clip's frame numbers:

- a missing onset (offset) is the first (last) frame; an offset past the last frame
  (a known annotation defect) is the last frame, and the result says so;
- a missing apex is the frame in onset..offset closest to (onset + offset) / 2, the
  lower one on a tie (:func:`middle_frame`): a provisional value, which preprocessing
  and the predictor replace by the peak of the facial motion
  (:func:`msmmt.preprocess.clip.estimate_apex`; the manifest records which was used);
- onset after offset, an apex outside onset..offset, or a key frame that is not among
  the clip's frames is a :class:`~msmmt.core.records.DatasetError`.

:func:`key_frame_positions` turns the resolved frame numbers into positions (0-based
indices in the clip's frame list): the only place where numbers become indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from msmmt.core.records import DatasetError, Sample

__all__ = ["KeyFrames", "key_frame_positions", "middle_frame", "resolve_marks", "sample_key_frames"]


@dataclass(frozen=True)
class KeyFrames:
    """Positions of onset <= apex <= offset in a list of frames (0-based)."""

    onset: int
    apex: int
    offset: int

    def relative(self) -> KeyFrames:
        """The same positions counted from the onset (for frames loaded from the onset on)."""
        return KeyFrames(0, self.apex - self.onset, self.offset - self.onset)


def middle_frame(numbers: Sequence[int], onset: int, offset: int) -> int:
    """The frame number in onset..offset closest to (onset + offset) / 2 (the lower on a tie)."""
    inside = [n for n in numbers if onset <= n <= offset]
    centre = (onset + offset) / 2
    return min(inside, key=lambda n: (abs(n - centre), n))


def resolve_marks(
    numbers: Sequence[int],
    onset: int | None,
    apex: int | None,
    offset: int | None,
    where: str,
) -> tuple[int, int, int, list[str]]:
    """Apply the rule above to the clip's sorted frame ``numbers``.

    Returns ``(onset, apex, offset, assumed)``, frame numbers, with ``assumed`` saying
    in words what was filled in. Errors start with ``where`` (file and row, or the clip).
    """
    if not numbers:
        raise DatasetError(f"{where}: the clip has no frames")
    span = f"frames {numbers[0]}..{numbers[-1]}"
    assumed = []
    if onset is None:
        onset = numbers[0]
        assumed.append(f"onset = first frame ({onset})")
    if offset is None:
        offset = numbers[-1]
        assumed.append(f"offset = last frame ({offset})")
    if onset not in numbers:  # before the order check: an onset past the end is the onset's fault
        raise DatasetError(f"{where}: onset frame {onset} is not among the clip's {span}")
    if onset > offset:
        raise DatasetError(f"{where}: onset frame {onset} is after offset frame {offset}")
    if onset in numbers and offset > numbers[-1]:
        assumed.append(f"offset {offset} is past the last frame; used the last frame ({numbers[-1]})")
        offset = numbers[-1]
    for name, value in (("onset", onset), ("offset", offset)):
        if value not in numbers:
            raise DatasetError(f"{where}: {name} frame {value} is not among the clip's {span}")
    if apex is None:
        apex = middle_frame(numbers, onset, offset)
        assumed.append(
            f"apex not annotated: middle frame of {onset}..{offset} ({apex}) until estimated "
            "from the facial motion"
        )
    if not onset <= apex <= offset:
        raise DatasetError(
            f"{where}: apex frame {apex} is outside onset..offset ({onset}..{offset})"
        )
    if apex not in numbers:
        raise DatasetError(f"{where}: apex frame {apex} is not among the clip's {span}")
    return onset, apex, offset, assumed


def key_frame_positions(
    numbers: Sequence[int],
    onset: int | None,
    apex: int | None,
    offset: int | None,
    where: str,
) -> KeyFrames:
    """Positions in ``numbers`` of the key frames resolved by :func:`resolve_marks`.

    For frames counted from 0 (an array of frames), pass ``range(len(frames))``.
    """
    onset, apex, offset, _ = resolve_marks(numbers, onset, apex, offset, where)
    index = {n: i for i, n in enumerate(numbers)}
    return KeyFrames(index[onset], index[apex], index[offset])


def sample_key_frames(sample: Sample) -> KeyFrames:
    """Positions in ``sample.frames`` of the sample's onset, apex and offset."""
    return key_frame_positions(
        sample.frame_numbers, sample.onset, sample.apex, sample.offset, sample.key
    )
