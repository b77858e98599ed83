"""What MAE pretraining on a fold's training clips teaches the backbone, without fine-tuning.

For every fold of a config's split (``-c cpu-small --set eval.protocol=kfold`` by default,
seed as configured), a network is built from the fold's seed and a copy of it is pretrained
with ``train.pretrain`` (docs/METHOD.md, "Label-free pretraining") on the fold's training
clips only. On the fold's *test* clips it measures:

* **reconstruction**: the pretrained autoencoder's error on the hidden patches (fixed random
  masks, ratio as configured), against predicting every hidden patch by the training clips'
  mean patch at that place (``mean``) and by no motion at all (``zero``: the normalised grey
  level 0.5 the flow images use for u = v = 0);
* **linear probe**: a logistic regression (the ``logreg`` baseline's pipeline) fitted on the
  frozen features of the training clips (the class tokens of every scale, eq 18) and scored on
  the test clips, for the pretrained backbone and for the same network at its random
  initialisation; UF1 of the pooled test predictions, and their paired subject-bootstrap
  difference;
* the pretraining time per epoch (one thread).

    .venv/bin/python benchmarks/bench_pretrain.py --dataset composite-release \
        --data /work/data/composite-like/release --set train.pretrain.epochs=50
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from msmmt.config import load_config
from msmmt.core.labels import class_names
from msmmt.core.threads import limit_threads
from msmmt.data.readers import read_for_training
from msmmt.engine.baselines import pixel_classifier
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.metrics import scores
from msmmt.engine.pretrain import pretrain_backbones
from msmmt.engine.runtime import seed_everything
from msmmt.evaluation.runner import build_folds
from msmmt.evaluation.uncertainty import paired_difference, run_predictions
from msmmt.model import build_model
from msmmt.model.mae import patchify, random_keep
from msmmt.model.msmmt import resize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402


@torch.no_grad()
def _features(model, motion: torch.Tensor) -> np.ndarray:
    model.eval()
    return model.forward_features({"motion": motion}).modalities["motion"].double().numpy()


def _predictions(keys, subjects, true, predicted, classes):
    frame = pd.DataFrame({"key": keys, "subject": subjects, "true": [classes[i] for i in true],
                          "predicted": [classes[i] for i in predicted]})
    return run_predictions([frame], classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default="cpu-small")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    limit_threads(1)
    cfg = load_config(args.config, ["eval.protocol=kfold", "model.members=1", *args.overrides])
    if cfg.train.pretrain.epochs == 0:
        raise SystemExit("set train.pretrain.epochs > 0")
    if list(cfg.model.modalities) != ["motion"]:
        raise SystemExit("this benchmark probes motion-only models")
    classes = class_names(cfg.data.class_set)
    samples = read_for_training(args.dataset, args.data, cfg.data)
    index = {s.key: i for i, s in enumerate(samples)}
    images = ModalityDataset(samples, classes, cfg.model.img_size)
    motion = torch.stack([images[i][1] for i in range(len(images))])
    labels = images.labels
    probe_pred = {"random": np.zeros(len(samples), int), "pretrained": np.zeros(len(samples), int)}
    errors = {"mae": [], "mean": [], "zero": []}
    seconds = []
    for fold in build_folds(cfg, samples):
        train = [index[k] for k in fold.train_keys]
        test = [index[k] for k in fold.test_keys]
        seed_everything(cfg.seed)
        model = build_model(cfg.model)
        random_init = copy.deepcopy(model)
        dataset = ModalityDataset([samples[i] for i in train], classes, cfg.model.img_size,
                                  cfg.train.augment, seed=cfg.seed)
        start = time.perf_counter()
        result = pretrain_backbones(model, dataset, cfg, progress=False)
        seconds.append((time.perf_counter() - start) / cfg.train.pretrain.epochs)
        mae, side = result.autoencoders["motion"], result.sides["motion"]
        held_out = resize(motion[test], side)
        torch.manual_seed(1)
        n = (side // mae.patch) ** 2
        keep = random_keep(len(test), n, mae.n_keep(n))
        with torch.no_grad():
            out = mae(held_out, keep)
        mean_patch = patchify(mae.backbone.normalise(resize(motion[train], side)), mae.patch).mean(
            0, keepdim=True)
        hidden = out.mask
        errors["mae"].append(((out.prediction - out.target) ** 2).mean(-1)[hidden])
        errors["mean"].append(((mean_patch - out.target) ** 2).mean(-1)[hidden])
        errors["zero"].append((out.target ** 2).mean(-1)[hidden])
        for name, net in (("random", random_init), ("pretrained", model)):
            probe = pixel_classifier(cfg.baseline.model_copy(update={"kind": "logreg"}), cfg.seed)
            probe.fit(_features(net, motion[train]), labels[train])
            probe_pred[name][test] = probe.predict(_features(net, motion[test]))
        print(f"{fold.name}: loss {result.info['pretrain_loss_first_motion']:.4f} -> "
              f"{result.info['pretrain_loss_last_motion']:.4f}, held-out {float(out.loss):.4f}, "
              f"{seconds[-1]:.2f} s/epoch", flush=True)
    keys = [s.key for s in samples]
    subjects = [s.subject for s in samples]
    runs = {name: _predictions(keys, subjects, labels, p, classes) for name, p in probe_pred.items()}
    diff = paired_difference(runs["pretrained"], runs["random"])
    mse = {name: float(torch.cat(e).mean()) for name, e in errors.items()}
    pc = cfg.train.pretrain
    row = {
        "config": args.config, "overrides": " ".join(args.overrides), "folds": len(seconds),
        "epochs": pc.epochs, "mask_ratio": pc.mask_ratio,
        "s_per_epoch": float(np.mean(seconds)),
        "heldout_mse_mae": mse["mae"], "heldout_mse_mean": mse["mean"], "heldout_mse_zero": mse["zero"],
        "probe_uf1_random": float(scores(labels, probe_pred["random"], len(classes))["uf1"]),
        "probe_uf1_pretrained": float(scores(labels, probe_pred["pretrained"], len(classes))["uf1"]),
        "probe_diff": diff.difference, "probe_diff_lo": diff.lo, "probe_diff_hi": diff.hi,
    }
    record("pretrain", [row])


if __name__ == "__main__":
    main()
