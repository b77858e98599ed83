"""MSMMT's training objective (paper eqs 19-21; docs/METHOD.md, "Training objective").

``L = (1 - alpha) * L_con + alpha * L_ce``: a symmetric cross-modal contrastive loss
between the projected texture and motion features of each clip (in the style of
CrossPoint, Afham et al., CVPR 2022, and CLIP's InfoNCE, Radford et al. 2021) plus
cross-entropy on the fused class scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from msmmt.config import LossConfig
from msmmt.model.msmmt import MSMMTOutput

__all__ = ["contrastive_loss", "msmmt_loss"]


def contrastive_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    tau: float = 0.1,
    labels: torch.Tensor | None = None,
    same_class_negatives: bool = True,
) -> torch.Tensor:
    """Eqs 19-20: symmetric cross-modal InfoNCE with cosine similarity.

    With ``s`` the cosine similarity and B clips,
    ``l_i(a -> b) = -log( exp(s(a_i, b_i)/tau) / sum_k exp(s(a_i, b_k)/tau) )``,
    ``l_i(b -> a)`` likewise with the roles swapped, and
    ``L_con = 1/(2B) sum_i [l_i(a -> b) + l_i(b -> a)]``.

    Args:
        z_a, z_b: ``(B, d)`` embeddings of the two modalities; row i of each is clip i.
        tau: temperature.
        labels: ``(B,)`` class indices, needed when ``same_class_negatives`` is False.
        same_class_negatives: False drops every other clip of clip i's class from
            the denominators of ``l_i`` (the positive pair stays).

    Returns:
        Scalar loss.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"embeddings must both be (B, d), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    logits = F.normalize(z_a, dim=1) @ F.normalize(z_b, dim=1).T / tau  # s(a_i, b_k) / tau
    if not same_class_negatives:
        if labels is None:
            raise ValueError("same_class_negatives=False needs the labels")
        same = labels[:, None] == labels[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(z_a.shape[0], device=z_a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def msmmt_loss(
    output: MSMMTOutput,
    labels: torch.Tensor,
    cfg: LossConfig,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq 21: ``L = (1 - alpha) L_con + alpha L_ce``.

    The contrastive term is skipped (``L = L_ce``) when ``cfg.alpha == 1`` or the model
    has one modality (``output.z_texture`` or ``output.z_motion`` is None); its entry in
    the returned parts is then 0.

    Args:
        output: the model's output.
        labels: ``(B,)`` class indices.
        cfg: ``alpha``, ``tau``, ``label_smoothing``, ``same_class_negatives``.
        class_weights: ``(num_classes,)`` weights of the CE term (e.g. inverse class
            frequency of the training set when ``cfg.class_weights`` is set).

    Returns:
        ``(total, {"ce": L_ce, "con": L_con})``, the parts detached.
    """
    ce = F.cross_entropy(
        output.logits, labels, weight=class_weights, label_smoothing=cfg.label_smoothing
    )
    if cfg.alpha >= 1.0 or output.z_texture is None or output.z_motion is None:
        return ce, {"ce": ce.detach(), "con": torch.zeros((), device=ce.device)}
    con = contrastive_loss(
        output.z_texture,
        output.z_motion,
        tau=cfg.tau,
        labels=labels,
        same_class_negatives=cfg.same_class_negatives,
    )
    total = (1.0 - cfg.alpha) * con + cfg.alpha * ce
    return total, {"ce": ce.detach(), "con": con.detach()}
