"""Enhanced attention distillation (EVD), the attention half of MS-TKD (METHOD §4.1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences, check_same_shape

#: Entries per layer handled at once; keeps every temporary of a chunk in the CPU cache.
_CHUNK = 1 << 16


class _EnhancedSquaredError(torch.autograd.Function):
    """``Σ_k Σ_l ‖A_l ⊙ E_k(A) − B_l ⊙ E_k(B)‖²`` of one stage (student A, teacher B), gradient included.

    The attention maps are the largest tensors of a training step. Autograd through
    ``amax``/``amin``/``mean`` and the products would allocate a dozen map-sized
    temporaries and walk them again backwards; here the maps are processed in
    cache-sized chunks, sums over layers are expanded so that only layer-sized tensors
    appear, and the gradient is written out while the chunk is at hand. With
    ``E_k = E_k(A)``, ``F_k = E_k(B)``, ``S_AA = Σ_l A_l²``, ``S_AB = Σ_l A_l ⊙ B_l``::

        loss = Σ_k Σ (E_k² S_AA − 2 E_k F_k S_AB + F_k² S_BB),   g_k = E_k S_AA − F_k S_AB
        ∂/∂A_l = 2 [ A_l Σ_k E_k² − B_l Σ_k E_k F_k + g_mean / L + m^max_l ⊙ g_max + m^min_l ⊙ g_min ]

    where ``m^max_l`` is 1/count on the layers that attain the maximum (0 elsewhere), which
    shares the gradient between tied layers the way ``torch.amax`` does.
    """

    @staticmethod
    def forward(ctx, num_layers: int, *maps: torch.Tensor) -> torch.Tensor:
        student = [a.reshape(-1) for a in maps[:num_layers]]
        teacher = [b.reshape(-1) for b in maps[num_layers:]]
        want_grad = any(ctx.needs_input_grad[1:num_layers + 1])
        grad = torch.empty((num_layers, student[0].numel()), dtype=student[0].dtype,
                           device=student[0].device) if want_grad else None
        partial = []
        for c0 in range(0, student[0].numel(), _CHUNK):
            a = torch.stack([x[c0:c0 + _CHUNK] for x in student])
            b = torch.stack([x[c0:c0 + _CHUNK] for x in teacher])
            # each network's maps are enhanced by its own envelopes E_k
            e = torch.stack((a.amax(0), a.amin(0), a.mean(0)))
            f = torch.stack((b.amax(0), b.amin(0), b.mean(0)))
            s_aa, s_ab, s_bb = (a * a).sum(0), (a * b).sum(0), (b * b).sum(0)
            ee, ef, ff = e * e, e * f, f * f
            # Σ_l ‖a_l e_k − b_l f_k‖² = e_k² S_aa − 2 e_k f_k S_ab + f_k² S_bb: no (3, L, C) temporaries.
            # Equal maps give x − 2x + x, exactly 0; the clamp stops rounding from going below 0.
            per_entry = (ee * s_aa - 2 * (ef * s_ab) + ff * s_bb).clamp_min_(0)
            partial.append(per_entry.sum())
            if want_grad:
                g = e * s_aa - f * s_ab
                chunk = a * ee.sum(0)
                chunk.addcmul_(b, ef.sum(0), value=-1)
                chunk += g[2] / num_layers
                for k in (0, 1):
                    # like torch.amax/amin, tied layers share the gradient
                    # a float `out` makes eq write 1.0/0.0 directly, several times faster than bool then cast
                    hit = torch.eq(a, e[k], out=torch.empty_like(a))
                    chunk.addcmul_(hit, g[k] / hit.sum(0))
                grad[:, c0:c0 + _CHUNK] = chunk
        ctx.num_layers = num_layers
        ctx.shape = maps[0].shape
        if want_grad:
            ctx.save_for_backward(grad)
        return torch.stack(partial).sum()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        student = [(g * (2 * grad_output)).view(ctx.shape) for g in grad]
        return (None, *student, *([None] * ctx.num_layers))


def _check_stage(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], stage: int) -> None:
    check_pair_of_sequences(student, teacher, f"attention layers of stage {stage}")
    for layer, (a_s, a_t) in enumerate(zip(student, teacher)):
        what = f"attention map of stage {stage}, layer {layer}"
        check_same_shape(a_s, a_t, what)
        if a_s.ndim != 4 or a_s.shape[-1] != a_s.shape[-2]:
            raise ValueError(f"The {what} must have shape (B, heads, N, N), got {tuple(a_s.shape)}.")
        if a_s.shape != student[0].shape:
            raise ValueError(f"All layers of attention stage {stage} must share one shape, got "
                             f"{tuple(student[0].shape)} (layer 0) and {tuple(a_s.shape)} (layer {layer}).")


def _stage_sum(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """``N² / numel(A_l)`` times the summed squared differences of one stage's ``3 L`` enhanced pairs."""
    n_tokens = student[0].shape[-1]
    maps = [a.float().contiguous() for a in student] + [b.detach().float().contiguous() for b in teacher]
    return _EnhancedSquaredError.apply(len(student), *maps) * (n_tokens**2 / student[0].numel())


def attention_distillation_loss(student_attn: Sequence[Sequence[torch.Tensor]],
                                teacher_attn: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Distil the student's attention maps towards the teacher's with enhanced maps.

    For each transformer stage ``s`` with layers ``l = 1..L`` and attention
    probabilities ``A_l`` of shape ``(B, heads, N_s, N_s)``, each network forms
    the envelopes ``E_max = max_l A_l``, ``E_min = min_l A_l`` and
    ``E_mean = mean_l A_l`` from its own maps, and the enhanced maps
    ``Ã_{l,k} = A_l ⊙ E_k`` for ``k`` in {max, min, mean}. Then::

        L_att = mean over (s, l, k) of  N_s² · MSE(Ã^S_{l,k}, Ã^T_{l,k})

    The mean runs over all ``(s, l, k)`` triples, so a stage with more layers
    counts more. The ``N_s²`` factor is ours (attention entries are of order
    ``1/N``, so raw MSEs are tiny); it replaces the paper's constant weight.
    Computed in float32; the teacher's maps are detached.

    Reference: Zhu et al., "Bridging the Gap in Missing Modalities: Leveraging
    Knowledge Distillation and Style Matching for Brain Tumor Segmentation",
    MICCAI 2025 (arXiv 2507.22626), enhanced attention distillation.

    Args:
        student_attn: Per stage, a sequence over layers of the student's attention
            probabilities ``(B, heads, N_s, N_s)``. ``N_s`` may differ between stages.
        teacher_attn: The teacher's maps in the same structure and shapes.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If a stage or the whole argument is a bare tensor instead of a list.
        ValueError: If the numbers of stages or layers differ, shapes differ between
            student and teacher or between layers of a stage, or a map is not ``(B, heads, N, N)``.
    """
    check_pair_of_sequences(student_attn, teacher_attn, "attention stages")
    for i, (s, t) in enumerate(zip(student_attn, teacher_attn)):
        _check_stage(s, t, i)
    num_terms = 3 * sum(len(s) for s in student_attn)
    return torch.stack([_stage_sum(s, t) for s, t in zip(student_attn, teacher_attn)]).sum() / num_terms


class AttentionDistillationLoss(nn.Module):
    """Module form of :func:`attention_distillation_loss` (it has no hyper-parameters)."""

    def forward(self, student_attn: Sequence[Sequence[torch.Tensor]],
                teacher_attn: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """See :func:`attention_distillation_loss`."""
        return attention_distillation_loss(student_attn, teacher_attn)
