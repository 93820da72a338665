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
import torch.nn.functional as F


def _standardize(x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.instance_norm(x.float(), eps=eps)


class _CorrelationDistance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
        n = s.shape[-1]
        with torch.autocast(device_type=s.device.type, enabled=False):
            s_hat, t_hat = _standardize(s, eps), _standardize(t, eps)
            diff = torch.bmm(s_hat, s_hat.transpose(1, 2)) / n - torch.bmm(t_hat, t_hat.transpose(1, 2)) / n
        ctx.save_for_backward(s, diff)
        ctx.eps = eps
        return diff.square().mean()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        s, diff = ctx.saved_tensors
        n = s.shape[-1]
        with torch.autocast(device_type=s.device.type, enabled=False):
            x = s.float()
            var, mean = torch.var_mean(x, dim=-1, unbiased=False, keepdim=True)
            rstd = torch.rsqrt(var + ctx.eps)
            y = (x - mean) * rstd
            # L = mean(D²), D = ŷŷᵀ/N − const (symmetric): ∂L/∂ŷ = 4 D ŷ / (N · numel(D))
            dy = torch.bmm(diff, y) * (4.0 * grad_out.float() / (n * diff.numel()))
            # backward of the standardisation: r · (dy − mean(dy) − ŷ · mean(dy · ŷ))
            dx = rstd * (dy - dy.mean(-1, keepdim=True) - y * (dy * y).mean(-1, keepdim=True))
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
