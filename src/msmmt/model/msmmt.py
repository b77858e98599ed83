"""MSMMT: multi-scale, multi-modal ViT for micro-expression recognition (paper eqs 10-18).

Each modality image (texture: dynamic image or apex frame; motion: the u / v /
optical-strain image) is resized to the base size m and down-sampled to m/s for
every scale factor s (antialiased), encoded by a :class:`~msmmt.model.backbone.ViTBackbone`
with attention-guided patch weighting, and represented by the concatenated class
tokens of its scales (eq 18). The two modality features are concatenated and
classified by ``FC2(Dropout(ReLU(FC1(.))))`` (eq 17). A projection head per modality
(``Linear -> ReLU -> Linear``, hidden width ``fusion_hidden``, as in SimCLR and
CrossPoint; the paper does not specify it) maps its feature to the embedding of the
cross-modal contrastive loss (eqs 19-20); a one-modality model has none. With
``model.pixel_blend > 0`` a :class:`~msmmt.model.pixel_head.PixelHead` (a linear classifier
on the motion image's pixels, fitted after training) is blended into the class
probabilities: :meth:`MSMMTOutput.probabilities`.

Backbone sharing (``ModelConfig.share_backbone``): ``modality`` (default) gives each
modality one backbone shared by its scales, ``all`` one backbone for everything (the
two modalities then run as one batch), ``scale`` one backbone per (modality, scale).

As timm's models, :class:`MSMMT` splits its pass in two: :meth:`MSMMT.forward_features`
(images of the configured modalities -> per-modality features and patch weights) and
:meth:`MSMMT.forward_head` (features -> logits and contrastive embeddings);
``model(texture, motion)`` runs both. See docs/METHOD.md, "Fusion and heads".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from msmmt.config import ModelConfig
from msmmt.model.backbone import ViTBackbone, build_backbone
from msmmt.model.mirror import mirror
from msmmt.model.pixel_head import PixelHead, blend

__all__ = ["MSMMT", "MSMMTFeatures", "MSMMTOutput", "mean_probability_logits"]


def mean_probability_logits(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``log mean_k softmax(logits_k)``: logits whose softmax is the mean of the K views' or
    networks' class probabilities (seed ensemble, test-time mirroring; docs/METHOD.md)."""
    log_p = torch.stack([torch.log_softmax(x.float(), dim=1) for x in logits])
    return torch.logsumexp(log_p, dim=0) - math.log(len(logits))


@dataclass
class MSMMTFeatures:
    """What :meth:`MSMMT.forward_features` returns for a batch of B clips."""

    modalities: dict[str, torch.Tensor]
    """Modality -> ``(B, S * D)`` feature F_M: the class tokens of its S scales after the
    final norm, concatenated in ``ModelConfig.scales`` order (eq 18)."""
    patch_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    """``"texture@1"``, ``"motion@4"``... -> ``(B, grid_h, grid_w)`` patch weights in [0, 1]
    (eq 14); empty with ``patch_weighting: none``."""


@dataclass
class MSMMTOutput:
    """What :class:`MSMMT` (or a :class:`~msmmt.model.ensemble.SeedEnsemble`) returns for a
    batch of B clips."""

    logits: torch.Tensor
    """``(B, num_classes)`` class scores (eq 17)."""
    z_texture: torch.Tensor | None
    """``(B, proj_dim)`` projected texture feature for the contrastive loss; None when
    the model has fewer than two modalities."""
    z_motion: torch.Tensor | None
    """``(B, proj_dim)`` projected motion feature; None likewise."""
    patch_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    """As :attr:`MSMMTFeatures.patch_weights`: the weights the last block used with
    ``post-norm`` / ``attention``, computed but inert with ``paper``, empty with ``none``."""
    pixel_logits: torch.Tensor | None = None
    """``(B, num_classes)`` logits of the fitted pixel head; None without one."""
    pixel_weight: float = 0.0
    """Its weight w in :meth:`probabilities` (``model.pixel_blend``)."""

    def probabilities(self, part: str = "blend") -> torch.Tensor:
        """``(B, num_classes)`` class probabilities:
        ``(1 - w) softmax(logits) + w softmax(pixel_logits)`` (``blend``; just
        ``softmax(logits)`` without a fitted pixel head), or one part alone (``vit``, ``pixel``).
        """
        vit = torch.softmax(self.logits, dim=1)
        if part == "vit":
            return vit
        if self.pixel_logits is None:
            if part == "pixel":
                raise ValueError("this output has no pixel head's logits")
            return vit
        pixel = torch.softmax(self.pixel_logits, dim=1)
        if part == "pixel":
            return pixel
        if part != "blend":
            raise ValueError(f"part must be 'blend', 'vit' or 'pixel', got {part!r}")
        return blend(vit, pixel, self.pixel_weight)

    def with_pixel_head(
        self, head: PixelHead | None, motion: torch.Tensor | None, weight: float
    ) -> MSMMTOutput:
        """This output carrying ``head``'s logits on ``motion`` and its blend weight, when the
        head is fitted (unchanged otherwise, and without a head); returns ``self``."""
        if head is not None and head.is_fitted:
            self.pixel_logits = head(motion)
            self.pixel_weight = weight
        return self


def _backbone_key(share: str, modality: str, scale: int) -> str:
    if share == "all":
        return "all"
    if share == "modality":
        return modality
    return f"{modality}@{scale}"


def scale_size(img_size: int, scale: int) -> int:
    """Side of the input at down-sampling factor ``scale``: round(m / s)."""
    return max(1, round(img_size / scale))


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size x size``, bilinear and antialiased (no-op at that size)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class MSMMT(nn.Module):
    """The MSMMT network; see the module docstring. Build it with :func:`msmmt.model.build.build_model`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg.model_copy(deep=True)
        self.modalities: tuple[str, ...] = tuple(cfg.modalities)
        self.scales: tuple[int, ...] = tuple(cfg.scales)
        # which (modality, scale) streams each backbone serves, in a fixed order
        self.streams: dict[str, list[tuple[str, int]]] = {}
        for modality in self.modalities:
            for scale in self.scales:
                key = _backbone_key(cfg.share_backbone, modality, scale)
                self.streams.setdefault(key, []).append((modality, scale))
        self.backbones = nn.ModuleDict({key: build_backbone(cfg) for key in self.streams})
        first: ViTBackbone = next(iter(self.backbones.values()))
        _check_grids(cfg, first.patch_size)
        feature_dim = first.embed_dim * len(self.scales)  # F_modality, eq 18
        self.classifier = nn.Sequential(
            nn.Linear(feature_dim * len(self.modalities), cfg.fusion_hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fusion_hidden, cfg.num_classes),
        )
        self.projections = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(feature_dim, cfg.fusion_hidden),
                    nn.ReLU(),
                    nn.Linear(cfg.fusion_hidden, cfg.proj_dim),
                )
                for m in self.modalities
            }
            if len(self.modalities) == 2
            else {}
        )
        self.pixel_head = PixelHead.for_config(cfg)

    def set_execution(self, **options: bool | None) -> None:
        """Choose how the backbones run; see :meth:`ViTBackbone.set_execution`."""
        for backbone in self.backbones.values():
            backbone.set_execution(**options)

    def forward_features(
        self, images: Mapping[str, torch.Tensor | None] | Sequence[torch.Tensor]
    ) -> MSMMTFeatures:
        """Encode a batch of clips: every scale of every modality, no head.

        Args:
            images: modality name -> ``(B, 3, H, W)`` float images in [0, 1], any size
                (entries of modalities the model does not use are ignored), or a
                sequence of such images in the order of ``self.modalities``.
        """
        if not isinstance(images, Mapping):
            if len(images) != len(self.modalities):
                raise ValueError(
                    f"expected {len(self.modalities)} images ({', '.join(self.modalities)}), "
                    f"got {len(images)}"
                )
            images = dict(zip(self.modalities, images, strict=True))
        checked = self._check_inputs(images)
        features: dict[tuple[str, int], torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        for key, backbone in self.backbones.items():
            self._encode_streams(key, backbone, checked, features, weights)
        per_modality = {
            m: torch.cat([features[m, s] for s in self.scales], dim=1) for m in self.modalities
        }
        return MSMMTFeatures(per_modality, weights)

    def _encode_streams(
        self,
        key: str,
        backbone: ViTBackbone,
        images: dict[str, torch.Tensor],
        features: dict[tuple[str, int], torch.Tensor],
        weights: dict[str, torch.Tensor],
    ) -> None:
        """Run one backbone on its (modality, scale) streams; fill ``features`` and ``weights``."""
        streams = self.streams[key]
        modalities = list(dict.fromkeys(m for m, _ in streams))
        scales = list(dict.fromkeys(s for _, s in streams))
        batch = images[modalities[0]].shape[0]
        # modalities sharing a backbone run as one batch, scales as one packed pass
        inputs = [
            torch.cat([resize(images[m], scale_size(self.cfg.img_size, s)) for m in modalities])
            for s in scales
        ]
        for scale, out in zip(scales, backbone(inputs), strict=True):
            for j, modality in enumerate(modalities):
                rows = slice(j * batch, (j + 1) * batch)
                features[modality, scale] = out.feature[rows]
                if out.weights is not None:
                    weights[f"{modality}@{scale}"] = out.weights[rows]

    def forward_head(self, features: MSMMTFeatures) -> MSMMTOutput:
        """Eq 17's classifier on the concatenated modality features, and the projection
        heads of the contrastive loss (two modalities only)."""
        per_modality = features.modalities
        logits = self.classifier(torch.cat([per_modality[m] for m in self.modalities], dim=1))
        z = {m: head(per_modality[m]) for m, head in self.projections.items()}
        return MSMMTOutput(logits, z.get("texture"), z.get("motion"), features.patch_weights)

    def forward(
        self, texture: torch.Tensor | None = None, motion: torch.Tensor | None = None
    ) -> MSMMTOutput:
        """Classify a batch of clips: :meth:`forward_head` of :meth:`forward_features`.

        Args:
            texture: ``(B, 3, H, W)`` float images in [0, 1], any size (ignored, may be
                None, when the model has no texture modality).
            motion: ``(B, 3, H', W')`` float images in [0, 1], likewise.

        With a fitted pixel head the output also carries its logits on ``motion``.
        """
        output = self.forward_head(self.forward_features({"texture": texture, "motion": motion}))
        if self.cfg.tta_flip and not self.training:
            flipped_texture, flipped_motion = mirror(texture, motion)
            flipped = self.forward_head(
                self.forward_features({"texture": flipped_texture, "motion": flipped_motion})
            )
            output.logits = mean_probability_logits([output.logits, flipped.logits])
        return output.with_pixel_head(self.pixel_head, motion, self.cfg.pixel_blend)

    @property
    def patch_size(self) -> tuple[int, int]:
        """The backbones' patch size (p, p)."""
        return next(iter(self.backbones.values())).patch_size

    def _check_inputs(
        self, given: Mapping[str, torch.Tensor | None]
    ) -> dict[str, torch.Tensor]:
        images = {}
        for modality in self.modalities:
            x = given.get(modality)
            if x is None:
                raise ValueError(f"the model uses the {modality} modality but got no {modality} input")
            if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
                raise ValueError(
                    f"{modality} input must be a float tensor (B, 3, H, W) in [0, 1], "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            images[modality] = x
        sizes = {m: x.shape[0] for m, x in images.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"texture and motion batches differ in size: {sizes}")
        return images


def _check_grids(cfg: ModelConfig, patch_size: tuple[int, int]) -> None:
    """Every scale must keep more than one patch (docs/METHOD.md, "Multi-scale patches")."""
    for scale in cfg.scales:
        side = scale_size(cfg.img_size, scale)
        grid = [-(-side // p) for p in patch_size]
        if grid[0] * grid[1] < 2:
            raise ValueError(
                f"model.scales: scale {scale} turns img_size {cfg.img_size} into {side}x{side} "
                f"pixels, a single {patch_size[0]}x{patch_size[1]} patch; use a larger "
                "img_size, a smaller patch_size or fewer scales"
            )
