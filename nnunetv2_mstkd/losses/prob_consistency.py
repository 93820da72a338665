"""Probability consistency, mode 1 of dual-mode logit distillation (DMLD, METHOD §4.2)."""
from __future__ import annotations

import math

import torch
from torch import nn

from nnunetv2_mstkd.losses._checks import check_same_shape


def consistency_ramp(epoch: int, ramp_epochs: float, max_weight: float = 10.0) -> float:
    """Sigmoid-shaped ramp-up of the consistency weight.

    ``w(e) = max_weight · exp(−5 · (1 − min(e / E_r, 1))²)``; ``w(0) = max_weight·e^{-5}``,
    ``w(E_r/2) = max_weight·e^{-1.25}`` and ``w(e) = max_weight`` for ``e ≥ E_r``.
    ``E_r <= 0`` means no ramp: the full weight from the first epoch.

    Reference: Laine & Aila, "Temporal Ensembling for Semi-Supervised Learning",
    ICLR 2017 (the ramp); used by Zhu et al., MICCAI 2025 with ``E_r`` = 20 of 100 epochs.

    Args:
        epoch: Current epoch, counted from 0.
        ramp_epochs: ``E_r``, the epoch at which the full weight is reached.
        max_weight: The weight after the ramp.

    Returns:
        The weight as a Python float.

    Raises:
        ValueError: If ``epoch`` is negative.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}.")
    if ramp_epochs <= 0:
        return float(max_weight)
    phase = 1.0 - min(epoch / ramp_epochs, 1.0)
    return float(max_weight * math.exp(-5.0 * phase * phase))


def logits_to_probabilities(logits: torch.Tensor, region: bool) -> torch.Tensor:
    """float32 probabilities: sigmoid per channel if ``region``, else softmax over axis 1."""
    x = logits.float()
    return torch.sigmoid(x) if region else torch.softmax(x, dim=1)


def probability_consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                                 region: bool) -> torch.Tensor:
    """Mean squared difference between student and teacher probabilities.

    ``L = MSE(σ(z_S), σ(z_T))``, the mean over batch, channels and voxels, with
    ``σ`` the sigmoid per channel for region training (nnU-Net's independent
    region outputs) or the softmax over the channel axis 1 for label training.
    The ramp weight :func:`consistency_ramp` is applied by the caller. Computed
    in float32; the teacher's logits are detached.

    Reference: Zhu et al., MICCAI 2025 (arXiv 2507.22626), dual-mode logit
    distillation, mode 1; the consistency term of Laine & Aila, ICLR 2017.

    Args:
        student_logits: ``(B, C, *spatial)`` logits of the student (one resolution).
        teacher_logits: The teacher's logits of the same shape.
        region: True for region (sigmoid) training, False for label (softmax) training.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If a list (e.g. deep-supervision outputs) is passed instead of a tensor.
        ValueError: If the shapes differ, have fewer than two axes, or label training has one channel.
    """
    check_same_shape(student_logits, teacher_logits, "logits (B, C, *spatial)", min_ndim=2)
    if not region and student_logits.shape[1] < 2:
        raise ValueError(f"Label training needs at least 2 channels for the softmax, got logits of shape "
                         f"{tuple(student_logits.shape)}; pass region=True for sigmoid outputs.")
    p_s = logits_to_probabilities(student_logits, region)
    p_t = logits_to_probabilities(teacher_logits.detach(), region)
    return (p_s - p_t).square().mean()


class ProbabilityConsistencyLoss(nn.Module):
    """Module form of :func:`probability_consistency_loss` (without the ramp weight).

    Args:
        region: True for region (sigmoid) training, False for label (softmax) training.
    """

    def __init__(self, region: bool) -> None:
        super().__init__()
        self.region = region

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`probability_consistency_loss`."""
        return probability_consistency_loss(student_logits, teacher_logits, self.region)
