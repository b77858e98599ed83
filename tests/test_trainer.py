"""Training one model: the dataset, the schedule, fit (learning, history, determinism,
early stopping) and predict_proba, on a tiny separable synthetic set."""

import csv

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from msmmt.config import load_config
from msmmt.core.records import DatasetError, Sample
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.early_stopping import EarlyStopping
from msmmt.engine.metrics import scores
from msmmt.engine.optim import build_optimizer, lr_factor, no_weight_decay_names
from msmmt.engine.trainer import _mixed_loss, class_weights, fit, predict_proba, train_sampler
from msmmt.model import MSMMTOutput, build_model
from msmmt.model.losses import msmmt_loss

CLASSES = ("negative", "positive", "surprise")
SIZE = 24


def tiny_config(*overrides):
    return load_config(
        "demo",
        [
            "device=cpu",
            f"model.img_size={SIZE}",
            "model.patch_size=4",
            "model.embed_dim=32",
            "model.depth=2",
            "model.num_heads=2",
            "model.fusion_hidden=32",
            "model.proj_dim=16",
            "model.dropout=0.0",
            "train.epochs=8",
            "train.batch_size=8",
            "train.lr=3e-3",
            "train.warmup_epochs=1",
            *overrides,
        ],
    )


def motion_pattern(cls: int, rng: np.random.Generator) -> np.ndarray:
    """A (u, v, strain) image whose flow encodes the class: u growing to the right (0),
    to the left (1), or u flat and v growing downwards (2). Classes 0 and 1 are
    unchanged by a horizontal flip that negates u, and so is class 2."""
    ramp = np.linspace(0, 255, SIZE)[None, :].repeat(SIZE, 0)
    u = {0: ramp, 1: 255 - ramp, 2: np.full((SIZE, SIZE), 128.0)}[cls]
    v = ramp.T if cls == 2 else np.full((SIZE, SIZE), 128.0)
    strain = rng.uniform(0, 255, (SIZE, SIZE))
    img = np.stack([u, v, strain], axis=2) + rng.normal(0, 20, (SIZE, SIZE, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def texture_pattern(cls: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy texture image with a bright bar at the top (0), middle (1) or bottom (2)."""
    img = rng.normal(80, 30, (SIZE, SIZE, 3))
    rows = slice(cls * SIZE // 3, (cls + 1) * SIZE // 3)
    img[rows, SIZE // 4 : 3 * SIZE // 4] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def write_set(folder, n_per_class, seed=0, subject_prefix="s", label_of=None):
    """Samples with PNG texture and motion images that both encode the class."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for cls in range(3):
        for i in range(n_per_class):
            name = f"{subject_prefix}{i % 4}_{cls}_{i}"
            tex, mot = folder / f"{name}_t.png", folder / f"{name}_m.png"
            # cv2 writes BGR: reverse the channels so the files hold RGB
            cv2.imwrite(str(tex), texture_pattern(cls, rng)[..., ::-1])
            cv2.imwrite(str(mot), motion_pattern(cls, rng)[..., ::-1])
            label = CLASSES[label_of(cls) if label_of else cls]
            samples.append(
                Sample(
                    "toy",
                    f"toy/{subject_prefix}{i % 4}",
                    name,
                    label,
                    texture_image=tex,
                    motion_image=mot,
                )
            )
    return samples


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_set(tmp_path_factory.mktemp("toy"), n_per_class=8)


# --- dataset -----------------------------------------------------------------------------


def test_dataset_yields_float_images_and_label_indices(toy):
    ds = ModalityDataset(toy, CLASSES, SIZE)
    tex, mot, label = ds[len(toy) - 1]
    assert tex.shape == mot.shape == (3, SIZE, SIZE) and tex.dtype == torch.float32
    assert 0.0 <= float(tex.min()) and float(tex.max()) <= 1.0
    assert label == CLASSES.index(toy[-1].label)
    raw = cv2.imread(str(toy[-1].motion_image))[..., ::-1]  # RGB
    assert torch.allclose(mot, torch.tensor(raw.copy()).permute(2, 0, 1).float() / 255)


def test_greyscale_is_replicated_and_images_are_resized(tmp_path):
    grey = np.tile(np.arange(32, dtype=np.uint8)[None, :] * 8, (32, 1))
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((32, 32, 3), np.uint8))
    s = Sample(
        "toy",
        "toy/a",
        "c",
        "positive",
        texture_image=tmp_path / "g.png",
        motion_image=tmp_path / "m.png",
    )
    tex, _, _ = ModalityDataset([s], CLASSES, 16)[0]
    assert tex.shape == (3, 16, 16)
    assert torch.equal(tex[0], tex[1]) and torch.equal(tex[1], tex[2])
    # area resize of a horizontal ramp 0, 8, 16, ... keeps it a ramp: pairs averaged
    expected = (np.arange(0, 32, 2) * 8 + 4) / 255
    assert np.allclose(tex[0, 0].numpy(), expected, atol=1 / 255)


def test_images_are_decoded_once_across_datasets(tmp_path, monkeypatch):
    samples = write_set(tmp_path, n_per_class=1, seed=3)
    calls = []
    real = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda *a: calls.append(a) or real(*a))
    ModalityDataset(samples, CLASSES, SIZE)
    first = len(calls)
    ModalityDataset(samples[:2], CLASSES, SIZE)  # another fold over the same files
    assert first == 2 * len(samples) and len(calls) == first


def test_unknown_label_is_a_clear_error(toy):
    bad = Sample(
        "casme2",
        "casme2/sub01",
        "EP01",
        "others",
        texture_image=toy[0].texture_image,
        motion_image=toy[0].motion_image,
    )
    with pytest.raises(DatasetError, match=r"casme2/sub01/EP01: label 'others'.*filter_class_set"):
        ModalityDataset([bad], CLASSES, SIZE)


def test_missing_or_corrupt_image_names_the_file(tmp_path, toy):
    missing = Sample(
        "toy",
        "toy/a",
        "c",
        "positive",
        texture_image=tmp_path / "nope.png",
        motion_image=toy[0].motion_image,
    )
    with pytest.raises(DatasetError, match="nope.png: image file not found"):
        ModalityDataset([missing], CLASSES, SIZE)
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    corrupt = Sample(
        "toy",
        "toy/a",
        "c",
        "positive",
        texture_image=toy[0].texture_image,
        motion_image=tmp_path / "bad.png",
    )
    with pytest.raises(DatasetError, match="bad.png: not a readable image"):
        ModalityDataset([corrupt], CLASSES, SIZE)
    no_image = Sample("toy", "toy/a", "c", "positive")
    with pytest.raises(DatasetError, match="toy/a/c: no texture image"):
        ModalityDataset([no_image], CLASSES, SIZE)


# --- schedule and weights ----------------------------------------------------------------


def test_lr_factor_warmup_then_cosine():
    # warm-up of 2 steps: 1/2, 2/2; cosine over the remaining 8: 0.5 (1 + cos(pi k / 8))
    got = [lr_factor(s, 10, 2, "cosine") for s in range(10)]
    expected = [0.5, 1.0] + [0.5 * (1 + np.cos(np.pi * k / 8)) for k in range(8)]
    assert np.allclose(got, expected)
    assert [lr_factor(s, 10, 0, "constant") for s in (0, 5, 9)] == [1.0, 1.0, 1.0]


def test_class_weights_are_inverse_training_frequency():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    # N / (C n_c): 4 / (3 * 3), 4 / (3 * 1); the absent class gets 1
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 1.0]))


# --- fit and predict ---------------------------------------------------------------------


def test_fit_learns_a_separable_set_and_writes_history(toy, tmp_path):
    cfg = tiny_config()
    live = []
    result = fit(cfg, toy, out_dir=tmp_path, progress=False, on_epoch=live.append)
    assert len(result.history) == cfg.train.epochs and result.best_epoch == cfg.train.epochs
    assert live == result.history  # every row handed over as its epoch ends
    assert result.history[-1]["train_acc"] > 0.8  # chance is 1/3
    proba = predict_proba(result.model, toy, cfg)
    assert proba.shape == (len(toy), 3)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    truth = np.array([CLASSES.index(s.label) for s in toy])
    assert scores(truth, proba.argmax(1), 3)["acc"] > 0.8
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, cfg.train.epochs + 1))
    assert set(rows[0]) == {"epoch", "lr", "train_loss", "train_ce", "train_con", "train_acc"}
    # the logged learning rate follows the schedule: epoch 1 starts the warm-up at 1/steps
    steps = -(-len(toy) // cfg.train.batch_size)
    assert float(rows[0]["lr"]) == pytest.approx(cfg.train.lr / steps)
    assert float(rows[1]["lr"]) == pytest.approx(cfg.train.lr)


def test_deterministic_mode_repeats_a_run_exactly(toy):
    # balanced sampling and class weights on, so their randomness is covered too
    weighted = ("train.balanced_sampling=true", "loss.class_weights=true")
    cfg = tiny_config("train.deterministic=true", "train.epochs=2", *weighted)
    a = fit(cfg, toy, progress=False)
    b = fit(cfg, toy, progress=False)
    assert a.history == b.history
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb), ka
    c = fit(
        tiny_config("train.deterministic=true", "train.epochs=2", "seed=1"), toy, progress=False
    )
    assert c.history != a.history
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


def test_early_stopping_restores_the_best_epoch(toy, tmp_path):
    # Validation clips label the patterns the other way round (class k named k+1), so
    # the better the model fits the training set, the worse it does on validation.
    val = write_set(
        tmp_path, n_per_class=3, seed=7, subject_prefix="v", label_of=lambda c: (c + 1) % 3
    )
    cfg = tiny_config("train.epochs=30", "train.patience=3")
    result = fit(cfg, toy, val=val, progress=False)
    h = result.history
    keys = [(r["val_uf1"], -r["val_loss"]) for r in h]
    assert result.best_epoch == 1 + keys.index(max(keys))
    assert len(h) == result.best_epoch + cfg.train.patience < cfg.train.epochs  # stopped early
    # the returned model is the best epoch's, not the last one's
    proba = predict_proba(result.model, val, cfg)
    truth = np.array([CLASSES.index(s.label) for s in val])
    s = scores(truth, proba.argmax(1), 3)
    assert s["uf1"] == pytest.approx(h[result.best_epoch - 1]["val_uf1"])
    assert s["acc"] == pytest.approx(h[result.best_epoch - 1]["val_acc"])
    assert h[-1]["val_uf1"] <= s["uf1"]


def test_balanced_sampler_draws_classes_equally_often():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    drawn = []
    for seed in range(20):
        drawn += [labels[i] for i in train_sampler(labels, balanced=True, seed=seed)]
    freq = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(freq, 1 / 3, atol=0.03)
    plain = list(train_sampler(labels, balanced=False, seed=0))
    assert sorted(plain) == list(range(100)) and plain != list(range(100))


def test_predict_proba_of_no_samples_is_empty(toy):
    cfg = tiny_config("train.epochs=1")
    model = fit(cfg, toy[:4], progress=False).model
    assert predict_proba(model, [], cfg).shape == (0, 3)


def test_optimizer_decays_weight_matrices_only():
    """AdamW's decoupled decay shrinks a decayed parameter by exactly (1 - lr wd) on a step
    with zero gradient; biases, norm weights and timm's no_weight_decay() parameters
    (pos_embed, cls_token) are left as they are."""
    cfg = tiny_config("train.weight_decay=0.5", "train.lr=0.1")
    model = build_model(cfg.model)
    skip = no_weight_decay_names(model)
    names = dict(model.named_parameters())
    vit_tokens = {n for n in names if n.endswith(("pos_embed", "cls_token"))}
    norms = {
        f"{m}.{p}" for m, mod in model.named_modules()
        if isinstance(mod, torch.nn.LayerNorm) for p, _ in mod.named_parameters()
    }
    biases = {n for n in names if n.endswith(".bias")}
    assert len(vit_tokens) == 4 and norms and biases  # two backbones: pos_embed + cls_token each
    assert vit_tokens | norms | biases <= skip
    linear = {f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert linear and not linear & skip
    before = {n: p.detach().clone() for n, p in names.items()}
    optimizer = build_optimizer(model, cfg.train)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    shrink = 1 - cfg.train.lr * cfg.train.weight_decay
    for n, p in names.items():
        expected = before[n] if n in skip else before[n] * shrink
        assert torch.allclose(p.detach(), expected, atol=1e-7), n


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    # (uf1, -loss): a tie on UF1 goes to the lower loss; epoch 3 is the best
    for epoch, score in enumerate([(0.5, -1.0), (0.5, -2.0), (0.7, -1.5), (0.7, -1.5)], 1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        stopper.update(epoch, score, model)
        assert not stopper.should_stop
    stopper.update(5, (0.6, -0.1), model)
    assert stopper.should_stop and stopper.best_epoch == 3
    assert stopper.restore(model) == 3 and torch.all(model.weight == 3)


# --- mixing and weight averaging ---------------------------------------------------------


def test_mixed_loss_is_the_lam_weighted_sum_over_both_labelings():
    cfg = tiny_config("loss.label_smoothing=0.1")
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels, perm, lam = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 0, 3, 1]), 0.3
    output = MSMMTOutput(logits=logits, z_texture=None, z_motion=None)
    loss, parts = _mixed_loss(lambda o, y: msmmt_loss(o, y, cfg.loss), output, labels, perm, lam)
    expected = lam * F.cross_entropy(logits, labels, label_smoothing=0.1) + (
        1 - lam
    ) * F.cross_entropy(logits, labels[perm], label_smoothing=0.1)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(parts["ce"]) == pytest.approx(float(expected), rel=1e-6)


def test_fit_with_mixup_and_cutmix_repeats_and_still_learns(toy):
    cfg = tiny_config(
        "train.deterministic=true", "train.epochs=12", "train.augment.mixup=0.2",
        "train.augment.cutmix=1.0",
    )
    a, b = fit(cfg, toy, progress=False), fit(cfg, toy, progress=False)
    assert a.history == b.history
    plain = fit(tiny_config("train.deterministic=true", "train.epochs=12"), toy, progress=False)
    assert a.history != plain.history  # the batches were mixed
    truth = np.array([CLASSES.index(s.label) for s in toy])
    assert scores(truth, predict_proba(a.model, toy, cfg).argmax(1), 3)["acc"] > 0.8


def test_weight_average_leaves_training_alone_and_is_what_fit_returns(toy):
    def run(*extra):
        return fit(tiny_config("train.deterministic=true", "train.epochs=3", *extra), toy,
                   progress=False)

    plain, last, averaged = run(), run("train.ema_decay=1e-9"), run("train.ema_decay=0.9")
    assert plain.history == averaged.history  # the average does not feed back into training
    weights = [dict(r.model.named_parameters()) for r in (plain, last, averaged)]
    for name, w in weights[0].items():  # decay ~0: the average is the last step's weights
        assert torch.allclose(w, weights[1][name], atol=1e-6), name
    assert any(not torch.allclose(w, weights[2][name]) for name, w in weights[0].items())
    assert not averaged.model.training
