"""Mean squared difference of two per-channel standardised maps, without float32 copies of the maps.

The feature half of MS-TKD compares ``f̂(F^S)`` and ``f̂(F^T)`` (instance normalisation without
affine parameters). Written with ``F.instance_norm`` on ``F.float()``, autograd keeps a float32
copy of every student map and the float32 difference for the backward pass: under mixed precision
that is four times the half-precision map, at every decoder level, the largest of which has the
patch's full resolution. :func:`standardized_mse` computes the same value in float32, a block of
rows at a time, and keeps only the two maps as they came (the student's is already kept by the
network for its own backward) plus per-channel moments; the backward recomputes each block.
"""
from __future__ import annotations

import torch

#: Float32 elements per block: 2**24 (64 MiB) bounds each block's temporaries.
BLOCK_ELEMENTS = 1 << 24


def _row_blocks(rows: int, n: int, block_elements: int):
    step = max(1, block_elements // max(n, 1))
    for a in range(0, rows, step):
        yield a, min(rows, a + step)


def standardize_last(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ŷ, r)``: ``x`` standardised in float32 over its last axis, ``ŷ = (x − μ) · r``, ``r = 1 / sqrt(σ² + eps)``."""
    x = x.float()
    var, mean = torch.var_mean(x, dim=-1, unbiased=False, keepdim=True)
    rstd = torch.rsqrt(var + eps)
    return (x - mean) * rstd, rstd


def standardize_last_backward(dy: torch.Tensor, y: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    """The gradient through :func:`standardize_last`: ``r · (dy − mean(dy) − ŷ · mean(dy · ŷ))`` over the last axis."""
    return rstd * (dy - dy.mean(-1, keepdim=True) - y * (dy * y).mean(-1, keepdim=True))


def _standardize(x: torch.Tensor, eps: float) -> torch.Tensor:
    return standardize_last(x, eps)[0]


class _StandardizedMSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, eps: float, block_elements: int) -> torch.Tensor:
        rows, n = s.shape
        total = torch.zeros((), dtype=torch.float32, device=s.device)
        for a, b in _row_blocks(rows, n, block_elements):
            total = total + (_standardize(s[a:b], eps) - _standardize(t[a:b], eps)).square().sum()
        ctx.save_for_backward(s, t)
        ctx.eps, ctx.block_elements = eps, block_elements
        return total / s.numel()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        s, t = ctx.saved_tensors
        rows, n = s.shape
        grad = torch.empty_like(s)
        scale = grad_out.float() * (2.0 / s.numel())
        for a, b in _row_blocks(rows, n, ctx.block_elements):
            y, rstd = standardize_last(s[a:b], ctx.eps)
            dy = scale * (y - _standardize(t[a:b], ctx.eps))
            grad[a:b] = standardize_last_backward(dy, y, rstd).to(s.dtype)
        return grad, None, None, None


def standardized_mse(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-5,
                     block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    """``mean((f̂(S) − f̂(T))²)`` with ``f̂`` the per-sample, per-channel standardisation over space.

    ``f̂(x) = (x − μ) / sqrt(σ² + eps)``, ``μ`` and the biased ``σ²`` over the spatial positions of each
    ``(sample, channel)``; equal (to float32 rounding) to ``MSE(standardize_per_channel(S),
    standardize_per_channel(T))`` of :mod:`~nnunetv2_mstkd.losses.feature_kd`, but computed block by
    block in float32 and differentiated by hand, so that autograd keeps only ``student`` and
    ``teacher`` in their own dtype. The gradient flows to ``student`` only.

    Args:
        student: ``(B, C, *spatial)``, any float dtype.
        teacher: The same shape; treated as a constant.
        eps: Added to each variance.
        block_elements: Float32 elements processed at once (bounds the temporaries).

    Returns:
        A float32 scalar tensor.
    """
    rows = student.shape[0] * student.shape[1]
    s = student.reshape(rows, -1)
    t = teacher.detach().reshape(rows, -1)
    return _StandardizedMSE.apply(s, t, eps, block_elements)
