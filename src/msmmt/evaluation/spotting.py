"""The MEGC spotting metric: intervals matched by IoU, precision, recall and F1.

MEGC's protocol (Li et al., MEGC 2020-2022 spotting task): a spotted interval
``[on, off]`` (frames, both ends included) is a true positive when its
intersection over union with a ground-truth interval reaches 0.5,

    IoU = |X ∩ Y| / |X ∪ Y|, with |[a, b]| = b - a + 1 frames,

each ground-truth interval counting at most once (here: matched one-to-one, best
IoU first). With TP true positives among P spotted and M ground-truth intervals,
``precision = TP / P``, ``recall = TP / M``, ``F1 = 2 TP / (P + M)``; over several
videos the counts are summed first (as MEGC does), then the ratios taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["SpotScore", "interval_iou", "match_intervals", "score_spotting"]


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two frame intervals ``(onset, offset)``, both ends included."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union


def match_intervals(
    spotted: Iterable[tuple[int, int]], truth: Iterable[tuple[int, int]], iou: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(spotted index, truth index, IoU)`` with IoU >= ``iou``,
    taken greedily from the highest IoU down."""
    spotted, truth = list(spotted), list(truth)
    pairs = [
        (interval_iou(s, t), i, j)
        for i, s in enumerate(spotted)
        for j, t in enumerate(truth)
    ]
    used_s, used_t, matches = set(), set(), []
    for value, i, j in sorted(pairs, reverse=True):
        if value < iou:
            break
        if i not in used_s and j not in used_t:
            used_s.add(i)
            used_t.add(j)
            matches.append((i, j, value))
    return matches


@dataclass(frozen=True)
class SpotScore:
    tp: int
    spotted: int
    truth: int

    @property
    def fp(self) -> int:
        return self.spotted - self.tp

    @property
    def fn(self) -> int:
        return self.truth - self.tp

    @property
    def precision(self) -> float:
        return self.tp / self.spotted if self.spotted else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        total = self.spotted + self.truth
        return 2 * self.tp / total if total else 0.0

    def __add__(self, other: SpotScore) -> SpotScore:
        return SpotScore(self.tp + other.tp, self.spotted + other.spotted, self.truth + other.truth)


def score_spotting(
    spotted: Iterable[tuple[int, int]] | np.ndarray,
    truth: Iterable[tuple[int, int]] | np.ndarray,
    iou: float = 0.5,
) -> SpotScore:
    """TP, spotted and ground-truth counts of one video (add scores to pool videos)."""
    spotted = [(int(a), int(b)) for a, b in spotted]
    truth = [(int(a), int(b)) for a, b in truth]
    return SpotScore(len(match_intervals(spotted, truth, iou)), len(spotted), len(truth))
