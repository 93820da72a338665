"""Multi-scale feature distillation, the feature half of MS-TKD (METHOD §4.1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences, check_same_shape
from nnunetv2_mstkd.losses.standardized_mse import standardized_mse


def standardize_per_channel(f: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise a feature map per sample and channel over its spatial positions.

    ``f̂ = (f − μ) / sqrt(σ² + eps)`` with ``μ`` and the biased variance ``σ²``
    (divide by the number of positions ``N``) taken over the spatial axes of each
    ``(sample, channel)`` pair; this is instance normalisation without affine
    parameters. A constant channel maps to zeros, not NaN.

    Args:
        f: ``(B, C, *spatial)``, any float dtype; computed in float32.
        eps: Added to the variance.

    Returns:
        float32 tensor of the shape of ``f``.
    """
    # instance normalisation without affine parameters is exactly this, as one fused kernel
    x = f.float()
    return F.instance_norm(x.flatten(2), eps=eps).reshape(f.shape)


def feature_distillation_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
                              eps: float = 1e-5) -> torch.Tensor:
    """Mean squared difference of standardised student and teacher features over several scales.

    Each map ``F_i`` of shape ``(B, C_i, *spatial_i)`` (2D or 3D) is standardised
    per sample and channel by :func:`standardize_per_channel`, so every scale and
    channel weighs alike whatever its magnitude::

        L_feat = (1 / S) · Σ_i MSE(f̂(F^S_i), f̂(F^T_i))

    Because both maps are standardised, each scale's term is at most 4 (about
    ``2 − 2·correlation``, averaged over samples and channels). Computed in float32 by
    :func:`~nnunetv2_mstkd.losses.standardized_mse.standardized_mse`, which keeps no float32 copy
    of the maps for the backward pass; the teacher's features are detached.

    Reference: Zhu et al., MICCAI 2025 (arXiv 2507.22626), multi-scale
    transformer knowledge distillation; the per-channel normalisation is ours.

    Args:
        student_feats: Student feature maps, one per scale.
        teacher_feats: Teacher feature maps of the same shapes, in the same order.
        eps: Added to each variance before the square root.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If an argument is a bare tensor instead of a list.
        ValueError: If the numbers of scales differ, or a pair's shapes differ or lack spatial axes.
    """
    check_pair_of_sequences(student_feats, teacher_feats, "feature maps")
    losses = []
    for i, (f_s, f_t) in enumerate(zip(student_feats, teacher_feats)):
        check_same_shape(f_s, f_t, f"feature map {i} (B, C, *spatial)", min_ndim=3)
        losses.append(standardized_mse(f_s, f_t, eps))
    return torch.stack(losses).mean()


class FeatureDistillationLoss(nn.Module):
    """Module form of :func:`feature_distillation_loss`.

    Args:
        eps: Added to each variance before the square root.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """See :func:`feature_distillation_loss`."""
        return feature_distillation_loss(student_feats, teacher_feats, self.eps)
