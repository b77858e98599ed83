"""Label-free pretraining of an MSMMT's backbones on its training clips (docs/METHOD.md,
"Label-free pretraining").

:func:`pretrain_backbones` trains each backbone of a freshly built network as the encoder of a
:class:`~msmmt.model.mae.MaskedAutoencoder` on the images of the modalities it serves, at the
finest scale it serves (side rounded down to a multiple of the patch), for
``cfg.train.pretrain.epochs`` epochs: AdamW at ``pretrain.lr`` (weight decay as in training),
linear warm-up over ``pretrain.warmup_epochs`` and cosine decay, the training set's geometric
augmentation, gradient clipping as in training. Labels are never read, and the caller passes
the training clips only, so the test subject stays unseen. The decoders are discarded; the
backbones keep their pretrained weights for supervised training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from msmmt.config import Config
from msmmt.engine.dataset import ModalityDataset
from msmmt.engine.optim import build_optimizer, build_scheduler
from msmmt.engine.runtime import Precision
from msmmt.model.mae import MaskedAutoencoder
from msmmt.model.msmmt import MSMMT, resize, scale_size

__all__ = ["Pretrained", "pretrain_backbones"]


@dataclass
class Pretrained:
    """What :func:`pretrain_backbones` returns."""

    autoencoders: dict[str, MaskedAutoencoder] = field(default_factory=dict)
    """Backbone key (``motion``, ``texture``, ``all``...) -> its autoencoder (the backbone,
    trained in place, with its decoder), in eval mode."""
    sides: dict[str, int] = field(default_factory=dict)
    """Backbone key -> the side of the images it was pretrained on."""
    info: dict[str, float] = field(default_factory=dict)
    """``pretrain_loss_first_<key>`` and ``pretrain_loss_last_<key>``: the mean reconstruction
    loss of the first and of the last epoch."""


def pretrain_backbones(
    model: MSMMT, dataset: ModalityDataset, cfg: Config, progress: bool = True
) -> Pretrained:
    """Pretrain ``model``'s backbones in place on ``dataset`` (the training clips, augmented)
    for ``cfg.train.pretrain.epochs`` epochs; the global RNG (seeded by the caller) draws the
    masks and the decoders' initial weights."""
    pc = cfg.train.pretrain
    device = next(model.parameters()).device
    precision = Precision.for_device(device, cfg.train.amp)
    schedule = cfg.train.model_copy(
        update={"epochs": pc.epochs, "lr": pc.lr, "warmup_epochs": pc.warmup_epochs,
                "schedule": "cosine"}
    )
    sampler = RandomSampler(range(len(dataset)), generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                        num_workers=cfg.train.num_workers)
    result = Pretrained()
    info = result.info
    for key, backbone in model.backbones.items():
        streams = model.streams[key]
        modalities = list(dict.fromkeys(m for m, _ in streams))
        side = scale_size(cfg.model.img_size, min(s for _, s in streams))
        patch = backbone.patch_size[0]
        side -= side % patch
        if (side // patch) ** 2 < 2:
            raise ValueError(
                f"train.pretrain: the {key} backbone's finest scale gives {side}x{side} px, "
                f"fewer than 2 patches of {patch} px; use a larger model.img_size or no pretraining"
            )
        mae = MaskedAutoencoder(
            backbone, mask_ratio=pc.mask_ratio, decoder_dim=pc.decoder_dim,
            decoder_depth=pc.decoder_depth, decoder_heads=pc.decoder_heads,
        ).to(device)
        optimizer = build_optimizer(mae, schedule)
        scheduler = build_scheduler(optimizer, schedule, len(loader))
        mae.train()
        bar = tqdm(range(1, pc.epochs + 1), desc=f"pretrain {key}", unit="epoch",
                   disable=not progress)
        for epoch in bar:
            dataset.set_epoch(-epoch)  # draws apart from the supervised epochs'
            total, n = 0.0, 0
            for texture, motion, _ in loader:
                images = {"texture": texture, "motion": motion}
                batch = torch.cat([resize(images[m].to(device), side) for m in modalities])
                with precision.autocast():
                    loss = mae(batch).loss.float()
                precision.step(loss, optimizer, mae.parameters(), cfg.train.grad_clip)
                scheduler.step()
                total += float(loss.detach()) * len(batch)
                n += len(batch)
            info.setdefault(f"pretrain_loss_first_{key}", total / n)
            info[f"pretrain_loss_last_{key}"] = total / n
            bar.set_postfix(loss=f"{total / n:.4f}")
        bar.close()
        result.autoencoders[key], result.sides[key] = mae.eval(), side
    return result
