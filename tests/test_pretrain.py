"""Label-free MAE pretraining (train.pretrain): the masking hides what it says, the loss is
the hidden patches' error, pretraining learns to reconstruct unseen images better than their
mean, and fit pretrains on the training clips only (docs/METHOD.md, "Label-free pretraining")."""

import json

import cv2
import numpy as np
import pytest
import torch
from eval_fakes import TINY_MODEL, one_thread
from pydantic import ValidationError

from msmmt.config import Config, PretrainConfig
from msmmt.core.labels import class_names
from msmmt.data.readers import filter_class_set, read_dataset
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.pretrain import pretrain_backbones
from msmmt.engine.trainer import fit
from msmmt.evaluation.fit_predict import train_and_predict
from msmmt.evaluation.runner import run_folds
from msmmt.model import build_model
from msmmt.model.backbone import build_backbone
from msmmt.model.mae import MaskedAutoencoder, patchify, random_keep

CLASSES = ("negative", "positive", "surprise")


def _ramps(n: int, size: int, seed: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 images, each channel a random plane a x + b y + c: any
    patch is predictable from the others, not from the images' mean."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    coef = rng.uniform(-1, 1, (n, 3, 3))
    planes = coef[..., 0, None, None] * x + coef[..., 1, None, None] * y + coef[..., 2, None, None] * 0.3
    return np.clip(127.5 + 127.5 * planes, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _ramp_samples(root, n: int, seed: int, subjects: int = 4):
    rows = ["dataset,subject,sample,label,texture_image,flow_image"]
    for i, image in enumerate(_ramps(n, 16, seed)):
        cv2.imwrite(str(root / f"img_{i}.png"), image)
        rows.append(f"casme2,s{i % subjects},clip{i},{CLASSES[i % 3]},img_{i}.png,img_{i}.png")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return filter_class_set(read_dataset("precomputed", root / "manifest.csv"), "composite")


def _cfg(epochs: int, members: int = 1, **pretrain) -> Config:
    model = {**TINY_MODEL["model"], "modalities": ["motion"], "members": members}
    train = {**TINY_MODEL["train"], "deterministic": True, "augment": {"rotation": 0.0, "flip": False,
             "scale": [1.0, 1.0]}, "pretrain": {"epochs": epochs, "warmup_epochs": 1, **pretrain}}
    return Config.model_validate({**TINY_MODEL, "model": model, "train": train})


def test_patchify_matches_slicing():
    image = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    patches = patchify(image, 4)
    assert patches.shape == (2, 6, 48)
    for i in range(2):
        for j in range(3):
            block = image[1, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].permute(1, 2, 0).reshape(-1)
            assert torch.equal(patches[1, 3 * i + j], block)
    with pytest.raises(ValueError, match="multiple of the patch"):
        patchify(torch.zeros(1, 3, 10, 12), 4)


def test_random_keep_draws_distinct_patches_per_image():
    torch.manual_seed(0)
    keep = random_keep(1024, 16, 4)
    assert keep.shape == (1024, 4)
    assert all(len(set(row.tolist())) == 4 for row in keep)
    assert keep.min() >= 0 and keep.max() < 16
    assert len({tuple(sorted(row.tolist())) for row in keep}) > 700  # independent draws: 1820 (1 - e^(-1024/1820)) = 783 expected
    counts = torch.bincount(keep.flatten(), minlength=16).float()
    assert counts.min() > 0.75 * counts.mean()  # every patch is kept about equally often


def _mae(mask_ratio=0.75):
    torch.manual_seed(0)
    cfg = _cfg(1).model
    return MaskedAutoencoder(build_backbone(cfg), mask_ratio=mask_ratio, decoder_dim=16,
                             decoder_heads=2).eval()


def test_kept_patch_count_is_clipped_to_leave_one_seen_and_one_hidden():
    assert _mae(0.75).n_keep(16) == 4
    assert _mae(0.75).n_keep(4) == 1
    assert _mae(0.1).n_keep(2) == 1
    assert _mae(0.95).n_keep(4) == 1
    with pytest.raises(ValueError, match="at least 2 patches"):
        _mae().n_keep(1)
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskedAutoencoder(build_backbone(_cfg(1).model), mask_ratio=1.0)


def test_encoder_never_sees_hidden_patches_and_loss_is_their_error():
    mae = _mae()
    image = torch.rand(3, 3, 16, 16)
    keep = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 4], [12, 13, 14, 15]])
    with torch.no_grad():
        out = mae(image, keep)
        changed = image.clone()
        for row, kept in enumerate(keep.tolist()):  # repaint every hidden patch of each image
            for p in set(range(16)) - set(kept):
                changed[row, :, 4 * (p // 4):4 * (p // 4) + 4, 4 * (p % 4):4 * (p % 4) + 4] = torch.rand(3, 4, 4)
        out2 = mae(changed, keep)
    assert out.mask.sum(1).tolist() == [12, 12, 12]
    assert not out.mask.gather(1, keep).any()
    assert torch.equal(out.prediction, out2.prediction)  # what is hidden does not reach the encoder
    assert not torch.isclose(out.loss, out2.loss)  # but it is what the loss scores
    # the loss by hand: normalised pixels ((x - 0.5) / 0.5), hidden patches only
    target = (image - 0.5) / 0.5
    errors = []
    for row in range(3):
        for p in range(16):
            if p in keep[row].tolist():
                continue
            patch = target[row, :, 4 * (p // 4):4 * (p // 4) + 4, 4 * (p % 4):4 * (p % 4) + 4]
            errors.append((out.prediction[row, p] - patch.permute(1, 2, 0).reshape(-1)).pow(2).mean())
    assert torch.isclose(out.loss, torch.stack(errors).mean(), atol=1e-6)


def test_pretraining_reconstructs_unseen_images_better_than_their_mean(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    train = _ramp_samples(tmp_path / "train", 64, seed=1)
    test = _ramp_samples(tmp_path / "test", 32, seed=2)
    cfg = _cfg(40, lr=3e-3)
    names = class_names("composite")
    with one_thread():
        torch.manual_seed(0)
        model = build_model(cfg.model)
        result = pretrain_backbones(model, ModalityDataset(train, names, 16, cfg.train.augment), cfg, False)
    mae = result.autoencoders["motion"]
    assert set(result.autoencoders) == {"motion"} and result.sides == {"motion": 16}
    assert mae.backbone is model.backbones["motion"]  # the network's own backbone was trained
    info = result.info
    assert info["pretrain_loss_last_motion"] < 0.5 * info["pretrain_loss_first_motion"]

    def images(samples):
        ds = ModalityDataset(samples, names, 16)
        return torch.stack([ds[i][1] for i in range(len(ds))])

    torch.manual_seed(1)
    unseen = images(test)
    keep = random_keep(len(unseen), 16, 4)
    with torch.no_grad():
        out = mae(unseen, keep)
    mean_image = patchify((images(train) - 0.5) / 0.5, 4).mean(0, keepdim=True)
    baseline = (mean_image - out.target).pow(2).mean(-1)[out.mask].mean()
    assert out.loss < 0.5 * baseline, (float(out.loss), float(baseline))


def test_fit_pretrains_on_the_training_clips_only(tmp_path):
    samples = _ramp_samples(tmp_path, 24, seed=3, subjects=6)
    train, other = samples[:16], samples[16:]
    cfg = _cfg(2)
    names = class_names("composite")
    with one_thread():
        result = fit(cfg, train, val=other, progress=False)
        torch.manual_seed(0)
        alone = build_model(cfg.model)
        dataset = ModalityDataset(train, names, 16, cfg.train.augment, seed=cfg.seed)
        pretrained = pretrain_backbones(alone, dataset, cfg, False)
        plain = fit(_cfg(0), train, val=other, progress=False)
    # fit's pretraining is this call on the training clips, loss for loss
    for key in ("pretrain_loss_first_motion", "pretrain_loss_last_motion"):
        assert result.info[key] == pytest.approx(pretrained.info[key], rel=1e-6)
    assert not any(k.startswith("pretrain") for k in plain.info)
    assert len(result.history) == len(plain.history) == 2  # supervised epochs unchanged
    assert result.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_ensemble_members_each_pretrain_and_folds_record_it(tmp_path):
    samples = _ramp_samples(tmp_path, 8, seed=4, subjects=2)
    run = tmp_path / "run"
    with one_thread():
        run_folds(_cfg(1, members=2), samples, run, train_and_predict, progress=False)
    for fold in sorted(run.glob("folds/*")):
        done = json.loads((fold / "done.json").read_text())
        first = [done[f"pretrain_loss_first_motion_member{k}"] for k in (1, 2)]
        assert first[0] != first[1]  # each member with its own seed
        assert done["pretrain_loss_last_motion_member2"] > 0


def test_too_few_patches_is_a_clear_error(tmp_path):
    samples = _ramp_samples(tmp_path, 4, seed=5)
    cfg = _cfg(1).model_copy(deep=True)
    cfg.model.scales = [3]  # 16 px / 3 = 5 px: 2 x 2 padded patches for the ViT, 1 whole one for MAE
    with pytest.raises(ValueError, match="fewer than 2 patches"):
        pretrain_backbones(build_model(cfg.model), ModalityDataset(samples, None, 16), cfg, False)


def test_config_checks_decoder_heads():
    assert PretrainConfig().epochs == 0  # off unless asked for
    with pytest.raises(ValidationError, match="divisible"):
        PretrainConfig(decoder_dim=30, decoder_heads=4)
    with pytest.raises(ValidationError):
        PretrainConfig(mask_ratio=1.0)
