"""The pixel head (model.pixel_blend): its linear map against a hand computation, its fit
against an independent scikit-learn logistic regression, the blend, the checkpoint and the
fold files (docs/METHOD.md, "Pixel head")."""

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from eval_fakes import TINY_MODEL, one_thread, write_manifest_dataset
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from msmmt.config import Config
from msmmt.core.labels import label_indices
from msmmt.core.records import DatasetError
from msmmt.data.readers import filter_class_set, read_dataset
from msmmt.engine.dataset import load_image
from msmmt.engine.metrics import scores
from msmmt.engine.trainer import fit, predict_parts, predict_proba
from msmmt.evaluation.comparison import compare_runs
from msmmt.evaluation.fit_predict import train_and_predict
from msmmt.evaluation.runner import run_folds
from msmmt.model.checkpoint import load_checkpoint, save_checkpoint
from msmmt.model.pixel_head import PixelHead
from msmmt.ops.scaling import resize_square


def _cubic(x: np.ndarray, size: int) -> np.ndarray:
    """(B, 3, H, W) -> (B, 3 size^2) by OpenCV's bicubic resize, image by image."""
    images = [cv2.resize(np.ascontiguousarray(im.transpose(1, 2, 0)), (size, size),
                         interpolation=cv2.INTER_CUBIC) for im in x.astype(np.float32)]
    return np.stack(images).transpose(0, 3, 1, 2).reshape(len(x), -1).astype(np.float64)


def test_head_is_the_standardised_linear_map_of_the_resampled_pixels():
    rng = np.random.default_rng(0)
    head = PixelHead(num_classes=3, size=4)
    d = 3 * 4 * 4
    mean, scale = rng.normal(size=d), rng.uniform(0.5, 2.0, d)
    coef, intercept = rng.normal(size=(3, d)), rng.normal(size=3)
    head.load_linear(mean, scale, coef, intercept, np.arange(3))
    x = rng.uniform(0, 1, (2, 3, 8, 8))
    expected = (_cubic(x, 4) - mean) / scale @ coef.T + intercept
    got = head(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert np.allclose(got, expected, atol=1e-4)
    assert head.is_fitted


def test_a_small_image_upsampled_to_the_model_input_comes_back_nearly_unchanged():
    """The release's 28 px flow image, upsampled to the model's 64 px (linear, as the
    dataset does), is what the head sees again: far closer than average pooling gives."""
    rng = np.random.default_rng(2)
    small = cv2.GaussianBlur(rng.uniform(0, 255, (28, 28, 3)), (0, 0), 1.0).astype(np.uint8)
    big = torch.tensor(resize_square(small, 64)).permute(2, 0, 1)[None].float()
    back = PixelHead(3, 28).features(big).reshape(3, 28, 28).permute(1, 2, 0).numpy()
    pooled = torch.nn.functional.adaptive_avg_pool2d(big, 28)[0].permute(1, 2, 0).numpy()
    error = np.abs(back - small).mean()
    assert error < 1.5 and error < 0.5 * np.abs(pooled - small).mean()


def test_two_seen_classes_give_scikit_learns_binary_probabilities_and_absent_ones_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3 * 2 * 2))
    y = np.where(x[:, 0] + rng.normal(0, 0.5, 40) > 0, 2, 0)  # classes 0 and 2 only
    clf = LogisticRegression().fit(x, y)
    head = PixelHead(num_classes=3, size=2)
    head.load_linear(np.zeros(12), np.ones(12), clf.coef_, clf.intercept_, clf.classes_)
    images = torch.tensor(x.reshape(40, 3, 2, 2), dtype=torch.float32)  # already 2 x 2: resampling is the identity
    proba = torch.softmax(head(images).double(), dim=1).numpy()
    assert np.allclose(proba[:, [0, 2]], clf.predict_proba(x), atol=1e-5)
    assert np.all(proba[:, 1] < 1e-30)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel")
    subjects = {"casme2/a": 6, "casme2/b": 6, "smic/c": 6, "samm/d": 6}
    return filter_class_set(read_dataset("precomputed", write_manifest_dataset(root, subjects)), "composite")


def _cfg(blend: float) -> Config:
    model = {**TINY_MODEL["model"], "modalities": ["motion"], "pixel_blend": blend, "pixel_size": 8}
    train = {**TINY_MODEL["train"], "deterministic": True}
    return Config.model_validate({**TINY_MODEL, "model": model, "train": train})


def test_fitted_head_is_an_independent_logistic_regression_and_leaves_the_vit_alone(samples):
    cfg = _cfg(0.3)
    with one_thread():
        blended, plain = fit(cfg, samples, progress=False), fit(_cfg(0.0), samples, progress=False)
    # independently: the model's 16 px motion input, OpenCV's bicubic resize, scaler, logreg
    x = np.stack([load_image(s.motion_image, 16) for s in samples]).transpose(0, 3, 1, 2) / 255.0
    features = _cubic(x, 8)
    y = np.array([["negative", "positive", "surprise"].index(s.label) for s in samples])
    reference = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=0),
    ).fit(features, y)
    parts = predict_parts(blended.model, samples, cfg)
    assert np.allclose(parts["pixel"], reference.predict_proba(features), atol=1e-4)
    assert blended.info["pixel_train_acc"] == pytest.approx(reference.score(features, y))
    # the ViT trains exactly as without the head; the output is the w-weighted mixture
    assert blended.history == plain.history
    assert np.allclose(parts["vit"], predict_proba(plain.model, samples, _cfg(0.0)), atol=1e-6)
    proba = predict_proba(blended.model, samples, cfg)
    assert np.allclose(proba, 0.7 * parts["vit"] + 0.3 * parts["pixel"], atol=1e-6)
    assert predict_parts(plain.model, samples, _cfg(0.0)) == {}


def test_checkpoint_keeps_the_fitted_head(samples, tmp_path):
    cfg = _cfg(0.5)
    with one_thread():
        result = fit(cfg, samples, progress=False)
    model, loaded_cfg, _ = load_checkpoint(save_checkpoint(result.model, cfg, tmp_path / "m"))
    assert model.pixel_head.is_fitted
    assert np.allclose(predict_proba(model, samples, loaded_cfg), predict_proba(result.model, samples, cfg))


def test_fold_files_hold_the_blend_and_its_parts_which_compare_reads(samples, tmp_path):
    cfg, run = _cfg(0.5), tmp_path / "run"
    with one_thread():
        run_folds(cfg, samples, run, train_and_predict, progress=False)
    table = pd.concat(pd.read_csv(f) for f in sorted(run.glob("folds/*/predictions.csv")))
    classes = ["negative", "positive", "surprise"]
    for c in classes:
        assert np.allclose(table[f"p_{c}"], 0.5 * table[f"vit_p_{c}"] + 0.5 * table[f"pixel_p_{c}"])
    result = compare_runs([run, f"{run}:vit", f"{run}:pixel"], n_boot=200)
    overall = result.table[result.table.part == "all"].set_index("run")
    truth = label_indices(table["true"].tolist(), classes)
    for part in ("vit", "pixel"):
        predicted = table[[f"{part}_p_{c}" for c in classes]].to_numpy().argmax(axis=1)
        assert overall.loc[f"run:{part}", "uf1"] == pytest.approx(scores(truth, predicted, 3)["uf1"])
    with pytest.raises(DatasetError, match="no 'texture' component"):
        compare_runs([run, f"{run}:texture"], n_boot=200)


def test_pixel_blend_needs_the_motion_modality():
    with pytest.raises(ValueError, match="pixel_blend > 0 needs the motion modality"):
        Config.model_validate({"model": {"modalities": ["texture"], "pixel_blend": 0.5}})
