"""Logit-standardised KL distillation, mode 2 of dual-mode logit distillation (DMLD, METHOD §4.2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mstkd.losses._checks import check_same_shape


def zscore(logits: torch.Tensor, dim: int | tuple[int, ...], eps: float = 1e-7,
           unbiased: bool = False) -> torch.Tensor:
    """``(z − mean(z)) / (std(z) + eps)`` over ``dim``, in float32.

    ``std`` divides by the count ``n`` (or ``n − 1`` when ``unbiased`` and ``n > 1``).
    Constant logits map to zeros.
    """
    x = logits.float()
    dims = (dim,) if isinstance(dim, int) else dim
    count = 1
    for d in dims:
        count *= x.shape[d]
    mean = x.mean(dim=dims, keepdim=True)
    # a single value has no n - 1 deviation; fall back to n so the result is 0, not NaN
    std = x.std(dim=dims, keepdim=True, correction=1 if unbiased and count > 1 else 0)
    return (x - mean) / (std + eps)


def logit_standardized_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, region: bool,
                               temperature: float = 7.0, eps: float = 1e-7, unbiased: bool = False,
                               skip_absent_regions: bool = True) -> torch.Tensor:
    """KL distillation on z-scored logits, scaled by ``T²``.

    Label training (softmax over the class axis 1): per voxel, ``ẑ = (z − mean_c z) / (std_c z + eps)``
    for student and teacher, then::

        L = T² · mean over (batch, voxels) of  Σ_c p_T,c (log p_T,c − log p_S,c),
        p = softmax(ẑ / T) over c.

    Region training (one independent sigmoid per region): each region's logits
    are z-scored over the spatial positions of the patch, per sample and region,
    then the Bernoulli KL of ``p = sigmoid(ẑ / T)``::

        L = T² · mean over (batch, regions, voxels) of
            p_T (log p_T − log p_S) + (1 − p_T)(log(1 − p_T) − log(1 − p_S)).

    A patch in which the teacher predicts no voxel of a region (every logit ≤ 0) holds
    nothing to distil for it: z-scoring a nearly constant logit map only amplifies its
    noise into a target. With ``skip_absent_regions`` (the default) such ``(sample,
    region)`` pairs are left out of the mean (0 when every pair is left out).

    Logarithms come from ``log_softmax`` / ``logsigmoid`` for stability. ``std``
    divides by the count (the population standard deviation of Sun et al.'s
    formula); ``unbiased=True`` divides by ``n − 1`` as their released code does.
    Computed in float32; the teacher's logits are detached.

    Reference: Sun et al., "Logit Standardization in Knowledge Distillation",
    CVPR 2024; applied to segmentation by Zhu et al., MICCAI 2025 (arXiv 2507.22626).

    Args:
        student_logits: ``(B, C, *spatial)`` logits of the student (one resolution).
        teacher_logits: The teacher's logits of the same shape.
        region: True for region (sigmoid) training, False for label (softmax) training.
        temperature: ``T``, applied to the standardised logits.
        eps: Added to the standard deviation.
        unbiased: Use the ``n − 1`` standard deviation.
        skip_absent_regions: Region training only: leave out the (sample, region) pairs whose
            teacher logits are all ≤ 0.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If a list (e.g. deep-supervision outputs) is passed instead of a tensor.
        ValueError: If the shapes differ, label training has fewer than 2 channels, region
            training has no spatial axes, or ``temperature`` is not positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    check_same_shape(student_logits, teacher_logits, "logits (B, C, *spatial)", min_ndim=3 if region else 2)
    teacher_logits = teacher_logits.detach()
    if region:
        spatial = tuple(range(2, student_logits.ndim))
        s = zscore(student_logits, spatial, eps, unbiased) / temperature
        t = zscore(teacher_logits, spatial, eps, unbiased) / temperature
        p_t = torch.sigmoid(t)
        kl = (p_t * (F.logsigmoid(t) - F.logsigmoid(s))
              + (1 - p_t) * (F.logsigmoid(-t) - F.logsigmoid(-s)))
        if skip_absent_regions:
            per_pair = kl.flatten(2).mean(-1)
            present = (teacher_logits.flatten(2) > 0).any(-1).to(per_pair.dtype)
            return (per_pair * present).sum() / present.sum().clamp_min(1) * temperature**2
    else:
        if student_logits.shape[1] < 2:
            raise ValueError(f"Label training needs at least 2 channels, got logits of shape "
                             f"{tuple(student_logits.shape)}; pass region=True for sigmoid outputs.")
        log_p_s = F.log_softmax(zscore(student_logits, 1, eps, unbiased) / temperature, dim=1)
        log_p_t = F.log_softmax(zscore(teacher_logits, 1, eps, unbiased) / temperature, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)
    return kl.mean() * temperature**2


class LogitStandardizedKDLoss(nn.Module):
    """Module form of :func:`logit_standardized_kd_loss`.

    Args:
        region: True for region (sigmoid) training, False for label (softmax) training.
        temperature: ``T``, applied to the standardised logits.
        eps: Added to the standard deviation.
        unbiased: Use the ``n − 1`` standard deviation.
        skip_absent_regions: See :func:`logit_standardized_kd_loss`.
    """

    def __init__(self, region: bool, temperature: float = 7.0, eps: float = 1e-7, unbiased: bool = False,
                 skip_absent_regions: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.region = region
        self.temperature = temperature
        self.eps = eps
        self.unbiased = unbiased
        self.skip_absent_regions = skip_absent_regions

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`logit_standardized_kd_loss`."""
        return logit_standardized_kd_loss(student_logits, teacher_logits, self.region, self.temperature,
                                          self.eps, self.unbiased, self.skip_absent_regions)
