"""Gram-matrix style matching, the first half of GSME (METHOD §4.3)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences, check_same_shape, check_tensor
from nnunetv2_mstkd.losses.correlation_distance import correlation_distance
from nnunetv2_mstkd.losses.feature_kd import standardize_per_channel


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix ``G = f fᵀ / (C · N)`` of a feature map, in float32.

    Args:
        f: ``(B, C, *spatial)``; it is flattened to ``(B, C, N)`` with ``N`` the
            number of spatial positions.

    Returns:
        ``(B, C, C)`` float32 tensor of channel co-activations.

    Raises:
        ValueError: If ``f`` has fewer than 3 axes or no elements.
    """
    check_tensor(f, "feature map")
    if f.ndim < 3:
        raise ValueError(f"gram_matrix expects (B, C, *spatial), got shape {tuple(f.shape)}.")
    x = f.float().flatten(2)
    c, n = x.shape[1], x.shape[2]
    return torch.bmm(x, x.transpose(1, 2)) / (c * n)


def correlation_matrix(f: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Channel correlation matrix ``R = f̂ f̂ᵀ / N`` of a feature map, in float32.

    ``f̂`` is ``f`` standardised per sample and channel over its ``N`` spatial positions
    (:func:`~nnunetv2_mstkd.losses.feature_kd.standardize_per_channel`), so ``R`` is the
    Gram matrix of standardised features: unit diagonal, entries in ``[−1, 1]``, and no
    dependence on how large the features are. A constant channel has a zero row and column.

    Args:
        f: ``(B, C, *spatial)``.
        eps: Added to each variance before the square root.

    Returns:
        ``(B, C, C)`` float32 tensor.
    """
    check_tensor(f, "feature map")
    if f.ndim < 3:
        raise ValueError(f"correlation_matrix expects (B, C, *spatial), got shape {tuple(f.shape)}.")
    # gram_matrix divides by C·N; a correlation divides by N only
    return gram_matrix(standardize_per_channel(f, eps)) * f.shape[1]


def gram_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
              standardize: bool = True) -> torch.Tensor:
    """Style distance between student and teacher features via Gram matrices.

    ``L_gram = Σ_levels mean_{b,i,j} (G(F^S)_{bij} − G(F^T)_{bij})²``. By default ``G`` is the
    Gram matrix of per-channel standardised features, i.e. the channel correlation matrix
    ``R = f̂ f̂ᵀ / N`` (:func:`correlation_matrix`), so each level's term lies in ``[0, 4]``
    whatever the features' magnitude. With ``standardize=False`` it is the raw
    ``G(f) = f fᵀ / (C · N)`` (:func:`gram_matrix`), which grows with ``‖f‖⁴`` as a network's
    features grow. Computed in float32; the teacher's features are detached.

    Reference: Gatys et al., "Image Style Transfer Using Convolutional Neural
    Networks", CVPR 2016 (Gram style loss); Zhu et al., MICCAI 2025 (arXiv
    2507.22626), global style matching. The standardisation is ours.

    Args:
        student_feats: Student feature maps ``(B, C_i, *spatial_i)``, one per level.
        teacher_feats: Teacher feature maps of the same shapes, in the same order.
        standardize: Compare correlation matrices (default) instead of raw Gram matrices.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If an argument is a bare tensor instead of a list.
        ValueError: If the numbers of levels differ or a pair's shapes differ.
    """
    check_pair_of_sequences(student_feats, teacher_feats, "feature levels")
    total = []
    for i, (f_s, f_t) in enumerate(zip(student_feats, teacher_feats)):
        check_same_shape(f_s, f_t, f"feature level {i} (B, C, *spatial)", min_ndim=3)
        if standardize:  # the same value as with correlation_matrix, without float32 copies kept for backward
            total.append(correlation_distance(f_s, f_t))
        else:
            total.append((gram_matrix(f_s) - gram_matrix(f_t.detach())).square().mean())
    return torch.stack(total).sum()


class GramStyleLoss(nn.Module):
    """Module form of :func:`gram_loss`.

    Args:
        standardize: Compare correlation matrices (default) instead of raw Gram matrices.
    """

    def __init__(self, standardize: bool = True) -> None:
        super().__init__()
        self.standardize = standardize

    def forward(self, student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """See :func:`gram_loss`."""
        return gram_loss(student_feats, teacher_feats, self.standardize)
