"""Squared distance of two channel-correlation matrices, keeping only the student's map for the backward pass.

The Gram term of GSME compares ``R = f̂ f̂ᵀ / N`` of student and teacher, ``f̂`` the per-channel standardised
map (:func:`~nnunetv2_mstkd.losses.gram.correlation_matrix`). Through autograd that keeps a float32 copy of
the map, the standardised map and half-precision copies for the product. :func:`correlation_distance`
computes the same value in float32 and its gradient by hand, recomputing ``f̂`` in the backward pass, so
it keeps only the student's map as it came (which the network keeps anyway) and the ``(B, C, C)``
difference of the matrices.
"""
from __future__ import annotations

import torch

from nnunetv2_mstkd.losses.standardized_mse import standardize_last, standardize_last_backward


class _CorrelationDistance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
        n = s.shape[-1]
        with torch.autocast(device_type=s.device.type, enabled=False):
            (s_hat, _), (t_hat, _) = standardize_last(s, eps), standardize_last(t, eps)
            diff = torch.bmm(s_hat, s_hat.transpose(1, 2)) / n - torch.bmm(t_hat, t_hat.transpose(1, 2)) / n
        ctx.save_for_backward(s, diff)
        ctx.eps = eps
        return diff.square().mean()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        s, diff = ctx.saved_tensors
        n = s.shape[-1]
        with torch.autocast(device_type=s.device.type, enabled=False):
            y, rstd = standardize_last(s, ctx.eps)
            # L = mean(D²), D = ŷŷᵀ/N − const (symmetric): ∂L/∂ŷ = 4 D ŷ / (N · numel(D))
            dy = torch.bmm(diff, y) * (4.0 * grad_out.float() / (n * diff.numel()))
            dx = standardize_last_backward(dy, y, rstd)
        return dx.to(s.dtype), None, None


def correlation_distance(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``mean((R(S) − R(T))²)`` with ``R(f) = f̂ f̂ᵀ / N`` the channel correlation of a ``(B, C, *spatial)`` map.

    ``f̂`` standardises each sample's channel over its ``N`` positions (``(f − μ) / sqrt(σ² + eps)``, as
    :func:`~nnunetv2_mstkd.losses.feature_kd.standardize_per_channel`). Equal, to float32 rounding, to
    ``(correlation_matrix(S) − correlation_matrix(T)).square().mean()``, but only ``student`` and the
    ``(B, C, C)`` difference are kept for the backward pass. The gradient flows to ``student`` only.

    Returns:
        A float32 scalar tensor in ``[0, 4]``.
    """
    b, c = student.shape[:2]
    return _CorrelationDistance.apply(student.reshape(b, c, -1), teacher.detach().reshape(b, c, -1), eps)
