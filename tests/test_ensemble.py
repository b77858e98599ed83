"""The seed ensemble (model.members): each member is the single network of its seed, the
ensemble's probabilities are the members' mean (blended with the pixel head), and it goes
through checkpoints, folds and TensorBoard logs as a single network does (docs/METHOD.md,
"Seed ensemble")."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fakes import TINY_MODEL, one_thread, write_manifest_dataset

from msmmt.config import Config
from msmmt.data.readers import filter_class_set, read_dataset
from msmmt.engine.trainer import fit, predict_parts, predict_proba
from msmmt.evaluation.fit_predict import train_and_predict
from msmmt.evaluation.runner import run_folds
from msmmt.evaluation.tensorboard import write_row
from msmmt.model import MSMMT, SeedEnsemble, build_model
from msmmt.model.checkpoint import load_checkpoint, save_checkpoint
from msmmt.model.ensemble import member_seed


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    subjects = {"casme2/a": 6, "casme2/b": 6, "smic/c": 6, "samm/d": 6}
    return filter_class_set(read_dataset("precomputed", write_manifest_dataset(root, subjects)), "composite")


def _cfg(members: int, blend: float = 0.0, seed: int = 0, modalities=("motion",)) -> Config:
    model = {**TINY_MODEL["model"], "modalities": list(modalities), "pixel_blend": blend,
             "pixel_size": 8, "members": members}
    train = {**TINY_MODEL["train"], "deterministic": True}
    return Config.model_validate({**TINY_MODEL, "seed": seed, "model": model, "train": train})


def test_member_seeds_leave_nearby_run_seeds_apart():
    assert [member_seed(0, k) for k in range(3)] == [0, 1000, 2000]
    assert {member_seed(s, k) for s in (0, 1, 2) for k in range(2)} == {0, 1, 2, 1000, 1001, 1002}


def test_output_is_the_mean_of_the_members_probabilities_and_weights():
    torch.manual_seed(0)
    cfg = _cfg(3, modalities=("texture", "motion")).model
    ensemble = build_model(cfg).eval()
    assert isinstance(ensemble, SeedEnsemble) and len(ensemble.members) == 3
    assert isinstance(build_model(_cfg(1).model), MSMMT)
    texture, motion = torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        out = ensemble(texture, motion)
        members = [m(texture, motion) for m in ensemble.members]
    mean = torch.stack([o.logits.softmax(1) for o in members]).mean(0)
    assert torch.allclose(out.probabilities(), mean, atol=1e-6)
    assert torch.allclose(out.logits, mean.log(), atol=1e-5)  # log of the mean, a valid logit
    assert not torch.allclose(members[0].logits.softmax(1), mean, atol=1e-3)  # members differ
    assert set(out.patch_weights) == {"texture@1", "texture@2", "motion@1", "motion@2"}
    for key, w in out.patch_weights.items():
        assert torch.allclose(w, torch.stack([o.patch_weights[key] for o in members]).mean(0))
    assert out.z_texture is None and out.z_motion is None
    assert ensemble.patch_size == ensemble.members[0].patch_size == (4, 4)


def test_members_are_the_single_networks_of_their_seeds_and_the_head_is_blended(samples):
    cfg = _cfg(2, blend=0.5)
    with one_thread():
        result = fit(cfg, samples, progress=False)
        singles = [fit(_cfg(1, seed=s), samples, progress=False) for s in (0, 1000)]
        head_only = fit(_cfg(1, blend=0.5), samples, progress=False)
    for member, single in zip(result.model.members, singles, strict=True):
        for (name, a), (_, b) in zip(member.state_dict().items(), single.model.state_dict().items(),
                                     strict=True):
            assert torch.equal(a, b), name
    assert result.history == [
        {"member": k + 1, **row} for k, single in enumerate(singles) for row in single.history
    ]
    assert result.info["best_epoch_member2"] == 2 and result.best_epoch == 2
    parts = predict_parts(result.model, samples, cfg)
    mean = np.mean([predict_proba(s.model, samples, _cfg(1)) for s in singles], axis=0)
    assert np.allclose(parts["vit"], mean, atol=1e-6)
    # the head sees the pixels only: the same fit as beside a single network
    assert np.allclose(parts["pixel"], predict_parts(head_only.model, samples, cfg)["pixel"])
    proba = predict_proba(result.model, samples, cfg)
    assert np.allclose(proba, 0.5 * mean + 0.5 * parts["pixel"], atol=1e-6)


def test_checkpoint_and_fold_files_of_an_ensemble(samples, tmp_path):
    cfg, run = _cfg(2, blend=0.5), tmp_path / "run"
    with one_thread():
        result = fit(cfg, samples, progress=False)
        model, loaded_cfg, _ = load_checkpoint(save_checkpoint(result.model, cfg, tmp_path / "m"))
        assert isinstance(model, SeedEnsemble) and model.pixel_head.is_fitted
        assert np.allclose(predict_proba(model, samples, loaded_cfg), predict_proba(result.model, samples, cfg))
        run_folds(cfg, samples[:12], run, train_and_predict, progress=False)
    fold = sorted(run.glob("folds/*"))[0]
    history = pd.read_csv(fold / "history.csv")
    assert list(history["member"]) == [1, 1, 2, 2] and list(history["epoch"]) == [1, 2, 1, 2]
    done = json.loads((fold / "done.json").read_text())
    assert done["best_epoch_member1"] == done["best_epoch_member2"] == 2


def test_tensorboard_keeps_the_members_apart():
    class Writer:
        def __init__(self):
            self.calls = []

        def add_scalar(self, tag, value, step):
            self.calls.append((tag, value, step))

        def flush(self):
            pass

    writer = Writer()
    write_row(writer, {"member": 2, "epoch": 3, "train_loss": 0.5})
    write_row(writer, {"epoch": 4, "val_uf1": 0.7})
    assert writer.calls == [("loss/train/member2", 0.5, 3), ("uf1/val", 0.7, 4)]


def test_members_must_be_at_least_one():
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Config.model_validate({"model": {"members": 0}})
