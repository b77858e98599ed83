"""Fitting the pixel head of a trained MSMMT on its training clips (docs/METHOD.md, "Pixel head").

The head (:class:`msmmt.model.pixel_head.PixelHead`) is the ``logreg`` baseline moved inside
the network: :func:`fit_pixel_head` pools the training clips' motion images exactly as the
head will at prediction time (no augmentation), fits the baseline's pipeline
(:func:`msmmt.engine.baselines.pixel_classifier`: standardisation, then multinomial logistic
regression with ``cfg.baseline``'s ``C``, ``class_weight`` and ``max_iter``) on them and
copies the scaler's and the regression's arrays into the head's buffers. Only training clips
are seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from msmmt.config import Config
from msmmt.core.labels import class_names
from msmmt.core.records import Sample
from msmmt.engine.baselines import pixel_classifier
from msmmt.engine.dataset import ModalityDataset
from msmmt.model.ensemble import SeedEnsemble
from msmmt.model.msmmt import MSMMT

__all__ = ["fit_pixel_head"]


@torch.no_grad()
def fit_pixel_head(
    model: MSMMT | SeedEnsemble, train: Sequence[Sample], cfg: Config
) -> dict[str, float]:
    """Fit ``model.pixel_head`` on ``train`` (in place); return ``{"pixel_train_acc": ...}``.

    Raises ValueError when the model has no pixel head (``model.pixel_blend`` is 0).
    """
    head = model.pixel_head
    if head is None:
        raise ValueError("the model has no pixel head (model.pixel_blend is 0)")
    dataset = ModalityDataset(train, class_names(cfg.data.class_set), cfg.model.img_size)
    loader = DataLoader(dataset, batch_size=max(cfg.train.batch_size, 64), shuffle=False)
    x = torch.cat([head.features(motion) for _, motion, _ in loader]).double().numpy()
    y = dataset.labels
    pipeline = pixel_classifier(cfg.baseline.model_copy(update={"kind": "logreg"}), cfg.seed)
    pipeline.fit(x, y)
    scaler, regression = pipeline[0], pipeline[-1]
    head.load_linear(scaler.mean_, scaler.scale_, regression.coef_, regression.intercept_,
                     regression.classes_)
    return {"pixel_train_acc": float(pipeline.score(x, y))}
