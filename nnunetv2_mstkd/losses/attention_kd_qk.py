"""The attention (EVD) term of MS-TKD from queries and keys, with the maps recomputed (METHOD §4.1).

:func:`~nnunetv2_mstkd.losses.attention_kd.attention_distillation_loss` takes the attention maps
``A = softmax(q kᵀ / sqrt(d))`` themselves: the network must then compute them explicitly and
autograd keeps every layer's ``(B, heads, N, N)`` float32 maps, and the term its gradient, until the
backward pass, the largest tensors of a distillation step. :func:`attention_distillation_loss_qk`
computes the same value from ``q`` and ``k`` (``B·heads·N·d`` numbers each): the network runs the fused
attention kernel, and the maps are formed again, a block of query rows at a time, in the forward
and in the backward of the term. It keeps only the queries and keys.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences
from nnunetv2_mstkd.losses.attention_kd import chunk_entries, enhanced_terms


def _maps(q: Sequence[torch.Tensor], k: Sequence[torch.Tensor], r0: int, r1: int) -> torch.Tensor:
    """float32 ``(L, B, heads, rows, N)`` attention probabilities of query rows ``r0:r1`` of every layer."""
    return torch.stack([torch.softmax(torch.matmul(ql[..., r0:r1, :].float() * (1 / math.sqrt(ql.shape[-1])),
                                                   kl.float().transpose(-2, -1)), dim=-1)
                        for ql, kl in zip(q, k)])


def _row_step(num_layers: int, q: torch.Tensor) -> int:
    """Query rows per block: as many as :func:`chunk_entries` allows entries of one layer's map."""
    n = q.shape[-2]
    per_row = q.numel() // q.shape[-1]  # B · heads · N entries per query row of all maps
    return max(1, chunk_entries(num_layers, per_row * n, 4, q.device.type) // per_row)


class _EnhancedSquaredErrorQK(torch.autograd.Function):
    """``_EnhancedSquaredError`` of the maps of ``(q, k)`` pairs; gradients to the student's ``q`` and ``k``."""

    @staticmethod
    def forward(ctx, num_layers: int, *qk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qs, ks, qt, kt = (list(qk[i * num_layers:(i + 1) * num_layers]) for i in range(4))
        n = qs[0].shape[-2]
        partial, scale = [], []
        step = _row_step(num_layers, qs[0])
        with torch.autocast(device_type=qs[0].device.type, enabled=False):
            for r0 in range(0, n, step):
                part, sc, _ = enhanced_terms(_maps(qs, ks, r0, r0 + step), _maps(qt, kt, r0, r0 + step), False)
                partial.append(part)
                scale.append(sc)
        ctx.num_layers = num_layers
        ctx.save_for_backward(*qk)
        total_scale = torch.stack(scale).sum()
        ctx.mark_non_differentiable(total_scale)
        return torch.stack(partial).sum(), total_scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor, _grad_scale: torch.Tensor | None = None):
        num_layers = ctx.num_layers
        saved = ctx.saved_tensors
        qs, ks, qt, kt = (list(saved[i * num_layers:(i + 1) * num_layers]) for i in range(4))
        n = qs[0].shape[-2]
        dq = [torch.empty(q.shape, dtype=torch.float32, device=q.device) for q in qs]
        dk = [torch.zeros(k.shape, dtype=torch.float32, device=k.device) for k in ks]
        inv_sqrt_d = 1 / math.sqrt(qs[0].shape[-1])
        step = _row_step(num_layers, qs[0])
        with torch.autocast(device_type=qs[0].device.type, enabled=False):
            for r0 in range(0, n, step):
                a = _maps(qs, ks, r0, r0 + step)
                _, _, chunk = enhanced_terms(a, _maps(qt, kt, r0, r0 + step), True)
                d_a = chunk.mul_(2 * grad_output.float())
                # softmax backward, row by row: dS = A ⊙ (dA − Σ_j dA ⊙ A)
                d_s = a * (d_a - (d_a * a).sum(-1, keepdim=True))
                for layer in range(num_layers):
                    dq[layer][..., r0:r0 + step, :] = torch.matmul(d_s[layer], ks[layer].float()) * inv_sqrt_d
                    dk[layer] += torch.matmul(d_s[layer].transpose(-2, -1),
                                              qs[layer][..., r0:r0 + step, :].float()) * inv_sqrt_d
        grads = [g.to(q.dtype) for g, q in zip(dq, qs)] + [g.to(k.dtype) for g, k in zip(dk, ks)]
        return (None, *grads, *([None] * (2 * num_layers)))


def attention_distillation_loss_qk(student_qk: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                                   teacher_qk: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                                   eps: float = 1e-12) -> torch.Tensor:
    """:func:`~nnunetv2_mstkd.losses.attention_kd.attention_distillation_loss` of the maps ``softmax(q kᵀ/√d)``.

    The same value (the enhanced-map relative error of every stage, averaged over stages, in
    ``[0, 2]``) and the same gradient, reaching the student's queries and keys; the maps are never
    stored. Computed in float32 whatever the dtype of ``q`` and ``k``; the teacher's are detached.

    Args:
        student_qk: Per transformer stage, a sequence over layers of ``(q, k)``, each ``(B, heads, N, d)``.
        teacher_qk: The teacher's pairs in the same structure and shapes.
        eps: Added to each stage's denominator.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If a stage or the whole argument is a bare tensor instead of a list.
        ValueError: If the numbers of stages or layers differ, or shapes differ or are not ``(B, heads, N, d)``.
    """
    check_pair_of_sequences(student_qk, teacher_qk, "attention stages")
    ratios = []
    for stage, (s, t) in enumerate(zip(student_qk, teacher_qk)):
        check_pair_of_sequences(s, t, f"attention layers of stage {stage}")
        shape = s[0][0].shape
        for layer, ((q_s, k_s), (q_t, k_t)) in enumerate(zip(s, t)):
            if any(x.shape != shape or x.ndim != 4 for x in (q_s, k_s, q_t, k_t)):
                raise ValueError(f"Queries and keys of stage {stage}, layer {layer} must all have the shape "
                                 f"(B, heads, N, d) of layer 0, {tuple(shape)}; got "
                                 f"{[tuple(x.shape) for x in (q_s, k_s, q_t, k_t)]}.")
        # the student's as they come (views of the qkv projection the attention kernel keeps anyway); the
        # teacher's as copies, so that its whole qkv projection (values included) need not stay alive
        args = [q for q, _ in s] + [k for _, k in s] + \
               [q.detach().contiguous() for q, _ in t] + [k.detach().contiguous() for _, k in t]
        squared_error, scale = _EnhancedSquaredErrorQK.apply(len(s), *args)
        ratios.append(squared_error / (scale + eps))
    return torch.stack(ratios).mean()
