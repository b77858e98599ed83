"""Patch weighting (paper eqs 12-15 and the variants' factors) against hand-worked and
structural results."""

import pytest
import torch

from msmmt.model.patch_weighting import (
    logit_bias,
    normalize_attention,
    patch_weights,
    rollout,
    token_scale,
    weight_tokens,
)

# A 3-token example with two blocks, worked by hand.
# Block 1 has two heads: the identity, and "everyone looks at token 1":
#   head mean G1 = [[.5, .5, 0], [0, 1, 0], [0, .5, .5]]
# Block 2 (one head): G2 = [[0, 0, 1], [.5, .5, 0], [1, 0, 0]]
HEAD_A = [[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]
HEAD_B = [[0.0, 1, 0], [0, 1, 0], [0, 1, 0]]
G2 = [[0.0, 0, 1], [0.5, 0.5, 0], [1, 0, 0]]


def _example():
    block1 = torch.tensor([[HEAD_A, HEAD_B]])  # (B=1, H=2, 3, 3)
    block2 = torch.tensor([G2])  # (B=1, 3, 3), already head-mean
    return [block1, block2]


def test_hand_worked_example():
    # G = G2 @ G1: row 0 = G1 row 2 = [0, .5, .5]; row 1 = .5 G1[0] + .5 G1[1] = [.25, .75, 0];
    # row 2 = G1 row 0 = [.5, .5, 0]. Column means: [.75, 1.75, .5] / 3; divided by the
    # max (1.75 / 3): g = [3/7, 1, 2/7].
    expected_g = torch.tensor([[3 / 7, 1.0, 2 / 7]])
    expected_rollout = torch.tensor([[[0, 0.5, 0.5], [0.25, 0.75, 0], [0.5, 0.5, 0]]])
    assert torch.allclose(rollout(_example()), expected_rollout)
    assert torch.allclose(patch_weights(_example()), expected_g)


def test_hand_worked_example_with_residual():
    # (G1 + I) / 2 = [[.75, .25, 0], [0, 1, 0], [0, .25, .75]]
    # (G2 + I) / 2 = [[.5, 0, .5], [.25, .75, 0], [.5, 0, .5]]
    # product rows: [.375, .25, .375], [.1875, .8125, 0], [.375, .25, .375]
    # column sums [.9375, 1.3125, .75] -> divided by 1.3125: [5/7, 1, 4/7]
    expected_g = torch.tensor([[5 / 7, 1.0, 4 / 7]])
    assert torch.allclose(patch_weights(_example(), residual=True), expected_g)


@pytest.mark.parametrize("residual", [False, True])
def test_uniform_attention_gives_uniform_weights(residual):
    n = 7
    uniform = torch.full((2, 3, n, n), 1.0 / n)  # (B, H, N, N)
    g = patch_weights([uniform, uniform, uniform], residual=residual)
    assert torch.allclose(g, torch.ones(2, n))


@pytest.mark.parametrize("residual", [False, True])
def test_rows_of_each_g_l_sum_to_one(residual):
    torch.manual_seed(0)
    probs = torch.randn(3, 4, 9, 9).softmax(-1)
    unnormalised = torch.rand(3, 9, 9) * 5
    for attention in (probs, unnormalised):
        g_l = normalize_attention(attention, residual=residual)
        assert g_l.shape == (3, 9, 9)
        assert torch.allclose(g_l.sum(-1), torch.ones(3, 9))
    assert torch.allclose(rollout([probs, unnormalised], residual).sum(-1), torch.ones(3, 9))


def test_weights_in_unit_interval_with_max_one_per_sample():
    torch.manual_seed(1)
    attentions = [torch.randn(5, 3, 17, 17).mul(3).softmax(-1) for _ in range(4)]
    g = patch_weights(attentions)
    assert g.shape == (5, 17)
    assert (g >= 0).all() and (g <= 1 + 1e-6).all()
    assert torch.allclose(g.max(dim=1).values, torch.ones(5))
    assert not torch.allclose(g, torch.ones_like(g))  # random attention is not uniform


def test_batched_equals_one_by_one():
    torch.manual_seed(2)
    attentions = [torch.randn(4, 2, 6, 6).softmax(-1) for _ in range(3)]
    batched = patch_weights(attentions, residual=True)
    for i in range(4):
        single = patch_weights([a[i : i + 1] for a in attentions], residual=True)
        assert torch.allclose(batched[i : i + 1], single)


def test_rollout_order_is_last_block_on_the_left():
    a = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # everyone attends token 1
    b = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # everyone attends token 0
    # G = b @ a: everyone ends at token 1 (a's target)
    assert torch.allclose(rollout([a, b]), a)
    assert torch.allclose(rollout([b, a]), b)


def test_gradients_reach_the_first_block():
    torch.manual_seed(3)
    logits = [torch.randn(2, 2, 5, 5, requires_grad=True) for _ in range(3)]
    g = patch_weights([x.softmax(-1) for x in logits])
    (g * torch.randn_like(g)).sum().backward()
    for x in logits:
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_weight_tokens_scales_patches_and_keeps_cls():
    tokens = torch.randn(2, 4, 3)
    weights = torch.tensor([[0.1, 1.0, 0.5, 0.0], [0.9, 0.2, 1.0, 0.3]])
    out = weight_tokens(tokens, weights)
    assert torch.equal(out[:, 0], tokens[:, 0])  # class token unweighted
    for b in range(2):
        for n in range(1, 4):
            assert torch.allclose(out[b, n], weights[b, n] * tokens[b, n])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least one block"):
        patch_weights([])
    with pytest.raises(ValueError, match=r"\(B, N, N\)"):
        normalize_attention(torch.rand(2, 3, 4))


def test_token_scale_and_logit_bias():
    weights = torch.tensor([[0.3, 1.0, 0.5, 0.0]])
    assert torch.equal(token_scale(weights), torch.tensor([[1.0, 1.0, 0.5, 0.0]]))
    bias = logit_bias(weights)
    assert bias[0, 0] == 0 and bias[0, 1] == 0
    assert torch.isclose(bias[0, 2], torch.log(torch.tensor(0.5)))
    assert torch.isfinite(bias).all() and bias[0, 3] < -80  # g = 0: clamped, exp underflows
    # softmax(s + log g) = g exp(s) / sum g exp(s)
    s = torch.tensor([[0.2, -1.0, 0.7, 3.0]])
    want = token_scale(weights) * s.exp()
    assert torch.allclose((s + bias).softmax(-1), want / want.sum(), atol=1e-7)
