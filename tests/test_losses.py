"""The cross-modal contrastive loss (eqs 19-20) and the total loss (eq 21)."""

import math

import pytest
import torch

from msmmt.config import LossConfig
from msmmt.model import MSMMTOutput
from msmmt.model.losses import contrastive_loss, msmmt_loss


def naive_contrastive(a, b, tau, labels, same_class_negatives):
    """Eqs 19-20 with explicit loops over anchors and candidates."""

    def cos(x, y):
        dot = sum(float(p) * float(q) for p, q in zip(x, y, strict=True))
        return dot / math.sqrt(sum(float(p) ** 2 for p in x) * sum(float(q) ** 2 for q in y))

    n = len(a)
    total = 0.0
    for anchors, others in ((a, b), (b, a)):
        for i in range(n):
            positive = math.exp(cos(anchors[i], others[i]) / tau)
            denominator = 0.0
            for k in range(n):
                if k != i and not same_class_negatives and labels[k] == labels[i]:
                    continue
                denominator += math.exp(cos(anchors[i], others[k]) / tau)
            total += -math.log(positive / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("same_class_negatives", [True, False])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_contrastive_equals_naive_double_loop(same_class_negatives, tau):
    torch.manual_seed(0)
    a, b = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    got = contrastive_loss(a, b, tau, labels, same_class_negatives)
    want = naive_contrastive(a, b, tau, labels.tolist(), same_class_negatives)
    assert got.item() == pytest.approx(want, rel=1e-9)


def test_same_class_negatives_changes_the_loss():
    torch.manual_seed(1)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with_neg = contrastive_loss(a, b, 0.1, labels, same_class_negatives=True)
    without = contrastive_loss(a, b, 0.1, labels, same_class_negatives=False)
    assert without < with_neg  # fewer terms in every denominator
    distinct = torch.arange(6)  # no two clips share a class: nothing to drop
    assert torch.allclose(
        contrastive_loss(a, b, 0.1, distinct, False), contrastive_loss(a, b, 0.1, distinct, True)
    )


def test_contrastive_is_lowest_when_pairs_match():
    torch.manual_seed(2)
    a = torch.randn(8, 16)
    matched = contrastive_loss(a, a * 3.0, tau=0.1)  # cosine ignores the scale
    for seed in range(5):
        perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
        if torch.equal(perm, torch.arange(8)):
            continue
        assert matched < contrastive_loss(a, a[perm], tau=0.1)
    assert matched < contrastive_loss(a, torch.randn(8, 16), tau=0.1)


def test_contrastive_needs_labels_to_drop_same_class():
    with pytest.raises(ValueError, match="labels"):
        contrastive_loss(torch.randn(3, 2), torch.randn(3, 2), same_class_negatives=False)


def _output(two_modalities=True, seed=3):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g))
    logits = torch.randn(6, 3, generator=g, requires_grad=True)
    return MSMMTOutput(logits, *(z if two_modalities else (None, None)), {})


def test_total_is_weighted_sum():
    out, labels = _output(), torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = LossConfig(alpha=0.3, tau=0.2)
    total, parts = msmmt_loss(out, labels, cfg)
    log_p = out.logits.log_softmax(1)
    ce = -log_p[torch.arange(6), labels].mean()
    con = naive_contrastive(out.z_texture, out.z_motion, 0.2, labels.tolist(), True)
    assert parts["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert parts["con"].item() == pytest.approx(con, rel=1e-5)
    assert total.item() == pytest.approx(0.7 * con + 0.3 * ce.item(), rel=1e-5)
    total.backward()
    assert out.logits.grad is not None


def test_contrastive_skipped_with_alpha_one_or_one_modality():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    for out, alpha in ((_output(), 1.0), (_output(two_modalities=False), 0.1)):
        total, parts = msmmt_loss(out, labels, LossConfig(alpha=alpha))
        assert torch.allclose(total, torch.nn.functional.cross_entropy(out.logits, labels))
        assert parts["con"].item() == 0.0


def test_class_weights_and_label_smoothing():
    out, labels = _output(), torch.tensor([0, 0, 0, 0, 1, 2])
    weights = torch.tensor([0.5, 2.0, 3.0])
    log_p = out.logits.log_softmax(1).detach()
    nll = -log_p[torch.arange(6), labels]
    _, parts = msmmt_loss(out, labels, LossConfig(alpha=1.0), class_weights=weights)
    want = (weights[labels] * nll).sum() / weights[labels].sum()
    assert parts["ce"].item() == pytest.approx(want.item(), rel=1e-5)
    eps = 0.2
    _, parts = msmmt_loss(out, labels, LossConfig(alpha=1.0, label_smoothing=eps))
    want = ((1 - eps) * nll + eps * (-log_p).mean(1)).mean()
    assert parts["ce"].item() == pytest.approx(want.item(), rel=1e-5)
