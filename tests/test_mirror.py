"""The mirror image of a clip (training flips and test-time mirroring): pixels flipped, the
flow's u negated, checked against a motion image computed from the mirrored flow itself; and
the model's test-time mirroring (model.tta_flip) is the mean over the two views."""

import numpy as np
import pytest
import torch
from test_msmmt import build, inputs, tiny

from msmmt.model import build_model
from msmmt.model.mirror import flip_motion, mirror
from msmmt.ops.flow import motion_image


def _smooth_flow(h=24, w=20, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / 7.0
    u = np.sin(x + rng.uniform(0, 3)) * np.cos(0.5 * y) + 0.3 * x
    v = np.cos(0.8 * x * y / 3 + rng.uniform(0, 3)) - 0.2 * y
    return np.dstack([u, v]).astype(np.float64)


def test_mirror_equals_the_motion_image_of_the_mirrored_flow():
    flow = _smooth_flow()
    mirrored_flow = np.dstack([-flow[:, ::-1, 0], flow[:, ::-1, 1]])  # u'(x) = -u(W-1-x)
    image = torch.from_numpy(motion_image(flow)).permute(2, 0, 1).float() / 255
    expected = torch.from_numpy(motion_image(mirrored_flow)).permute(2, 0, 1).float() / 255
    _, got = mirror(None, image)
    assert (got - expected).abs().max() <= 1.01 / 255  # at most one grey level (rounding ties)
    assert (got - expected).abs().mean() < 0.05 / 255
    assert not torch.allclose(got, image.flip(-1))  # the sign of u matters: a plain flip differs


def test_flip_motion_changes_u_only_and_keeps_the_pixels_in_place():
    motion = torch.tensor([[[0.0, 0.25]], [[0.5, 0.75]], [[1.0, 0.1]]])  # (3, 1, 2)
    out = flip_motion(motion)
    assert torch.equal(out[0], torch.tensor([[1.0, 0.75]]))
    assert torch.equal(out[1:], motion[1:])
    assert torch.equal(motion[0], torch.tensor([[0.0, 0.25]]))  # the input is not modified
    batch = torch.stack([motion, motion.flip(-1)])
    assert torch.equal(flip_motion(batch)[1], flip_motion(motion.flip(-1)))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        flip_motion(torch.zeros(2, 4, 4))


def test_mirror_flips_both_images_and_is_its_own_inverse():
    texture, motion = inputs(batch=2)
    t1, m1 = mirror(texture, motion)
    assert torch.equal(t1[..., 0], texture[..., -1]) and torch.equal(t1, texture.flip(-1))
    assert torch.allclose(m1[:, 0], 1 - motion[:, 0].flip(-1))
    t2, m2 = mirror(t1, m1)
    assert torch.equal(t2, texture) and torch.allclose(m2, motion, atol=1e-7)
    assert mirror(None, None) == (None, None)


def test_tta_is_the_mean_of_the_clip_and_its_mirror():
    plain, tta = build(seed=3), build(seed=3, tta_flip=True)
    tta.load_state_dict(plain.state_dict())
    plain.eval(), tta.eval()
    texture, motion = inputs()
    with torch.no_grad():
        got = tta(texture, motion).probabilities()
        a = plain(texture, motion).probabilities()
        b = plain(*mirror(texture, motion)).probabilities()
    assert torch.allclose(got, (a + b) / 2, atol=1e-6)
    assert not torch.allclose(a, b, atol=1e-3)  # the untrained network is not mirror-symmetric
    with torch.no_grad():  # what the name promises: a clip and its mirror get the same answer
        assert torch.allclose(tta(*mirror(texture, motion)).probabilities(), got, atol=1e-6)


def test_training_mode_sees_the_clip_only():
    plain, tta = build(seed=4), build(seed=4, tta_flip=True)
    tta.load_state_dict(plain.state_dict())
    plain.train(), tta.train()
    texture, motion = inputs()
    torch.manual_seed(0)
    a = plain(texture, motion)
    torch.manual_seed(0)  # the same dropout draws
    b = tta(texture, motion)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.z_motion, b.z_motion)


def test_ensemble_members_mirror_too():
    torch.manual_seed(5)
    ensemble = build_model(tiny(tta_flip=True, members=2)).eval()
    texture, motion = inputs()
    with torch.no_grad():
        got = ensemble(texture, motion).probabilities()
        mirrored = ensemble(*mirror(texture, motion)).probabilities()
    assert torch.allclose(got, mirrored, atol=1e-6)
