"""A timm Vision Transformer that runs several image scales at once and exposes its attention.

:class:`ViTBackbone` wraps ``timm``'s ``VisionTransformer`` (any registered ViT name,
optionally with its depth / width / patch size overridden) for the multi-scale,
patch-weighted encoder of MSMMT (docs/METHOD.md, "Multi-scale patches" and
"Patch weighting"):

* every scale is patch-embedded with the same patches; position embeddings are
  resampled per grid and images whose side is not a multiple of the patch are
  padded (timm's ``dynamic_img_size`` / ``dynamic_img_pad``);
* the first L-1 blocks compute attention explicitly and report its head mean;
  the attention-guided patch weights g of :mod:`msmmt.model.patch_weighting` act
  on the last block as ``patch_weighting`` says (``none``, ``paper``,
  ``post-norm``, ``attention``);
* the feature of a scale is the class token after the final norm.

By default the token sequences of all scales are *packed* into one sequence per
image, so one pass through the network serves every scale (as in NaViT's sequence
packing, Dehghani et al. 2023): the token-wise layers (norms, qkv, projection, MLP)
run once on all tokens, while attention runs per scale, so the scales never attend
to each other and the result equals separate passes. Since only the class tokens
leave the last block, it is evaluated for them alone (its keys and values still
come from every token). ``set_execution`` switches either off, and the fused
attention kernel, for the benchmark's baselines. The blocks run as
:func:`msmmt.model.blocks.block_forward`, msmmt's own code over timm's parameters.

Weights come from timm's hub (``pretrained="timm"``), from a local safetensors /
``.pth`` / ``.npz`` file (resampling the position and patch embeddings when the
grid or patch size differ, as timm does), or are random (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import timm
import torch
from timm.layers import Attention
from timm.models import load_state_dict
from timm.models.vision_transformer import Block, VisionTransformer, checkpoint_filter_fn
from torch import nn

from msmmt.config import ConfigError, ModelConfig
from msmmt.model.blocks import block_forward, missing_parts
from msmmt.model.patch_weighting import (
    VARIANTS,
    logit_bias,
    patch_weights,
    token_scale,
    weight_tokens,
)
from msmmt.model.stem import conv_stem

__all__ = [
    "ScaleOutput",
    "ViTBackbone",
    "build_backbone",
    "create_vit",
    "load_vit_weights",
    "preload_pretrained",
]


class ScaleOutput(NamedTuple):
    """What the backbone returns for one input scale."""

    feature: torch.Tensor
    """``(B, D)`` class token after the final norm."""
    weights: torch.Tensor | None
    """``(B, grid_h, grid_w)`` patch weights g in [0, 1] (eq 14); None with ``none``.
    Applied to the last block with ``post-norm`` and ``attention``, computed but inert
    with ``paper``."""
    attentions: list[torch.Tensor] | None
    """Head-mean attention ``(B, N, N)`` of each of the first L-1 blocks, N = 1 + patches;
    None with ``none``."""


def create_vit(
    name: str,
    *,
    pretrained: str | Path | None = None,
    img_size: int = 224,
    patch_size: int | None = None,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
    drop_path_rate: float = 0.0,
) -> VisionTransformer:
    """Create a headless timm ViT that accepts any input size.

    Args:
        name: a timm model name whose class is ``VisionTransformer`` with one class
            token (``vit_base_patch16_224``, ``vit_tiny_patch16_224``, ``deit_small_patch16_224``...).
        pretrained: ``None`` (random init), ``"timm"`` (hub weights, needs internet) or
            the path of a local safetensors / ``.pth`` / ``.npz`` file.
        img_size: the base size m; the position embeddings are made for its grid.
        patch_size, embed_dim, depth, num_heads: override the named architecture.
        drop_path_rate: stochastic depth.
    """
    overrides = dict(patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads)
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    try:
        vit = timm.create_model(
            name,
            pretrained=pretrained == "timm",
            img_size=img_size,
            num_classes=0,
            dynamic_img_size=True,
            dynamic_img_pad=True,
            drop_path_rate=drop_path_rate,
            **kwargs,
        )
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"backbone {name!r}: not a timm model name") from None
        if pretrained == "timm" and "loading state_dict" in str(err):
            raise ValueError(
                f"backbone {name!r}: its hub weights do not fit the architecture the config "
                "overrides (patch_size / embed_dim / depth / num_heads); set model.pretrained: null"
            ) from None
        raise
    except TypeError as err:
        raise ValueError(f"backbone {name!r}: does not take these options ({err})") from None
    except OSError as err:  # the hub's LocalEntryNotFoundError, urllib's URLError
        if pretrained != "timm":
            raise
        raise ConfigError(
            f"model.pretrained timm: could not fetch the ImageNet weights of {name!r} (no network "
            f"and not in the local cache: {type(err).__name__}); set model.pretrained to a local "
            "safetensors / .pth / .npz file of them, or fetch them once with a network"
        ) from None
    _check_supported(vit, name)
    if pretrained is not None and pretrained != "timm":
        load_vit_weights(vit, pretrained)
    return vit


def _check_supported(vit: nn.Module, name: str) -> None:
    problem = None
    if not isinstance(vit, VisionTransformer):
        problem = f"is a {type(vit).__name__}, not a timm VisionTransformer"
    elif vit.cls_token is None or vit.num_prefix_tokens != 1:
        problem = "needs exactly one class token and no register tokens"
    elif vit.attn_pool is not None:
        problem = "uses attention pooling instead of the class token"
    elif len(vit.blocks) < 2:
        problem = "needs at least 2 blocks"
    elif any(type(b) is not Block or type(b.attn) is not Attention for b in vit.blocks):
        problem = "needs timm's standard pre-norm Block with Attention in every layer"
    elif missing := missing_parts(vit.blocks[0]):
        problem = (
            f"timm {timm.__version__} lacks {', '.join(missing)}; msmmt's packed block needs "
            "the timm range pinned in pyproject.toml"
        )
    if problem:
        raise ValueError(f"backbone {name!r}: {problem}")


def load_vit_weights(vit: VisionTransformer, path: str | Path) -> None:
    """Load a local checkpoint into ``vit`` as timm's ``pretrained`` loading does.

    safetensors and ``.pth``/``.pt``/``.bin`` files are read without running code
    (``weights_only``), passed through timm's ViT ``checkpoint_filter_fn`` (which
    resamples the position embedding to the model's grid and the patch embedding
    to its patch size, and converts CLIP / DINOv2 / ... layouts); a classifier head
    is dropped. ``.npz`` files (the original JAX releases) go through timm's JAX loader.
    Every backbone parameter must be found in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    try:
        if path.suffix == ".npz":
            vit.load_pretrained(str(path))
            return
        state = checkpoint_filter_fn(load_state_dict(str(path), weights_only=True), vit)
    except Exception as err:  # corrupt or foreign files fail in many ways
        raise ValueError(f"{path}: cannot read ViT weights ({type(err).__name__}: {err})") from err
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the backbone (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )


class ViTBackbone(nn.Module):
    """A timm ViT run on a list of scales, with attention-guided patch weighting.

    Args:
        vit: from :func:`create_vit`.
        patch_weighting: how the patch weights g act on the last block, one of
            :data:`~msmmt.model.patch_weighting.VARIANTS` (``none`` gives a plain ViT).
        rollout_residual: add the identity to each block's attention (attention rollout).
        detach_weights: stop gradients through the patch weights.
        pack_scales, fused_attn, last_block_cls_only: how the pass is executed, see
            :meth:`set_execution`; they do not change the result.
    """

    def __init__(
        self,
        vit: VisionTransformer,
        *,
        patch_weighting: str = "post-norm",
        rollout_residual: bool = False,
        detach_weights: bool = True,
        pack_scales: bool = True,
        fused_attn: bool = True,
        last_block_cls_only: bool = True,
    ) -> None:
        super().__init__()
        _check_supported(vit, type(vit).__name__)
        self.vit = vit
        if patch_weighting not in VARIANTS:
            raise ValueError(f"patch_weighting {patch_weighting!r}: expected one of {VARIANTS}")
        self.patch_weighting = patch_weighting
        self.rollout_residual = rollout_residual
        self.detach_weights = detach_weights
        self.set_execution(pack_scales, fused_attn, last_block_cls_only)
        data = timm.data.resolve_model_data_config(vit)
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"]).view(1, -1, 1, 1), persistent=False)

    def set_execution(
        self,
        pack_scales: bool | None = None,
        fused_attn: bool | None = None,
        last_block_cls_only: bool | None = None,
    ) -> None:
        """Choose how the pass runs (None keeps the current choice); results are the same,
        except that with stochastic depth the packed scales of a clip share one drop draw.

        Args:
            pack_scales: run all scales as one packed sequence (True) or one pass per
                scale (the benchmark's baseline).
            fused_attn: use the fused attention kernel in the blocks whose attention
                probabilities are not needed (the last block, or all of them without
                patch weighting); False computes attention explicitly everywhere.
            last_block_cls_only: evaluate the last block for the class tokens only
                (the only tokens used after it); False runs it on every token.
        """
        if pack_scales is not None:
            self.pack_scales = pack_scales
        if fused_attn is not None:
            self.fused_attn = fused_attn
        if last_block_cls_only is not None:
            self.last_block_cls_only = last_block_cls_only

    @property
    def embed_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def patch_size(self) -> tuple[int, int]:
        return tuple(self.vit.patch_embed.patch_size)

    def forward(self, images: Sequence[torch.Tensor]) -> list[ScaleOutput]:
        """Encode each image (one per scale, ``(B, 3, h, w)`` in [0, 1], same B).

        Images are normalised with the backbone's mean / std here; their sizes may
        differ and need not be multiples of the patch size.
        """
        if not images:
            raise ValueError("the backbone needs at least one image")
        for image in images:
            if image.dim() != 4 or image.shape[1] != self.mean.shape[1]:
                raise ValueError(
                    f"images must be (B, {self.mean.shape[1]}, H, W), got {tuple(image.shape)}"
                )
            if image.shape[0] != images[0].shape[0]:
                raise ValueError("all scales must have the same batch size")
        if self.pack_scales:
            return self._encode(list(images))
        return [self._encode([image])[0] for image in images]

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        """``(image - mean) / std`` with the backbone's channel statistics: what it sees."""
        return (image - self.mean) / self.std

    def embed(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalise ``(B, 3, h, w)`` in [0, 1], patch-embed it and add the class token and the
        position embedding resampled to its grid: ``(B, 1 + gh gw, D)`` tokens and ``(gh, gw)``."""
        vit = self.vit
        x = vit.patch_embed(self.normalise(image))  # (B, gh, gw, D), padded if needed
        grid = (x.shape[1], x.shape[2])
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))  # position embedding resampled to grid
        return x, grid

    def _encode(self, images: list[torch.Tensor]) -> list[ScaleOutput]:
        """One pass over the packed token sequences of ``images``."""
        embedded = [self.embed(image) for image in images]
        lengths = [tokens.shape[1] for tokens, _ in embedded]
        spans = _spans(lengths)
        x = torch.cat([tokens for tokens, _ in embedded], dim=1)
        need_probs = self.patch_weighting != "none"
        attentions = []  # per block: the head-mean attention of each scale
        for block in self.vit.blocks[:-1]:
            x, probs = block_forward(block, x, spans, need_probs=need_probs, fused=self.fused_attn)
            attentions.append(probs)
        per_scale_attn = [list(a) for a in zip(*attentions, strict=True)] if need_probs else None
        weights = None if per_scale_attn is None else [self._weights(a) for a in per_scale_attn]
        features = self.vit.norm(self._last_block(x, spans, weights))  # (B, scales, D)
        outputs = []
        for i, (_, grid) in enumerate(embedded):
            weight_map = None if weights is None else weights[i][:, 1:].reshape(-1, *grid)
            attn = None if per_scale_attn is None else per_scale_attn[i]
            outputs.append(ScaleOutput(features[:, i], weight_map, attn))
        return outputs

    def _weights(self, attentions: list[torch.Tensor]) -> torch.Tensor:
        """Eqs 12-14 for one scale: ``(B, n)`` weights, class token first."""
        if self.detach_weights:
            attentions = [a.detach() for a in attentions]
        return patch_weights(attentions, residual=self.rollout_residual)

    def _last_block(
        self, x: torch.Tensor, spans: list[tuple[int, int]], weights: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """The last block with the patch weights applied as ``patch_weighting`` says;
        ``(B, scales, D)``, the class token of each span."""
        options = dict(fused=self.fused_attn)
        if self.patch_weighting == "paper":  # eq 15 literally: inert, LN(g x) = LN(x)
            parts = x.split([end - start for start, end in spans], dim=1)
            x = torch.cat([weight_tokens(t, w) for t, w in zip(parts, weights, strict=True)], dim=1)
        elif self.patch_weighting == "post-norm":
            options["kv_scale"] = torch.cat([token_scale(w) for w in weights], dim=1)
        elif self.patch_weighting == "attention":
            options["bias"] = torch.cat([logit_bias(w) for w in weights], dim=1)
        block = self.vit.blocks[-1]
        if self.last_block_cls_only:
            return block_forward(block, x, spans, cls_only=True, **options)[0]
        return block_forward(block, x, spans, **options)[0][:, [start for start, _ in spans]]


def _spans(lengths: Sequence[int]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for n in lengths:
        spans.append((start, start + n))
        start += n
    return spans


def preload_pretrained(cfg: ModelConfig) -> None:
    """Build the backbone once when it has pretrained weights: fetches the hub's into the
    local cache and checks that they (or the local file's) load and fit, so that a missing
    network or a bad file fails up front (ConfigError / ValueError), not in every fold."""
    if cfg.pretrained is not None:
        build_backbone(cfg)


def build_backbone(cfg: ModelConfig) -> ViTBackbone:
    """The backbone a :class:`~msmmt.config.ModelConfig` describes."""
    vit = create_vit(
        cfg.backbone,
        pretrained=cfg.pretrained,
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        drop_path_rate=cfg.drop_path_rate,
    )
    if cfg.stem == "conv":
        embed = vit.patch_embed
        embed.proj = conv_stem(embed.proj.in_channels, vit.embed_dim, embed.patch_size[0])
    return ViTBackbone(
        vit,
        patch_weighting=cfg.patch_weighting,
        rollout_residual=cfg.rollout_residual,
        detach_weights=cfg.detach_weights,
    )
