"""Enhanced attention distillation (EVD), the attention half of MS-TKD (METHOD §4.1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences, check_same_shape


def _stage_terms(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], stage: int) -> torch.Tensor:
    """The ``3 * L`` scaled MSE terms of one transformer stage, as a 1-D tensor."""
    check_pair_of_sequences(student, teacher, f"attention layers of stage {stage}")
    for layer, (a_s, a_t) in enumerate(zip(student, teacher)):
        what = f"attention map of stage {stage}, layer {layer}"
        check_same_shape(a_s, a_t, what)
        if a_s.ndim != 4 or a_s.shape[-1] != a_s.shape[-2]:
            raise ValueError(f"The {what} must have shape (B, heads, N, N), got {tuple(a_s.shape)}.")
        if a_s.shape != student[0].shape:
            raise ValueError(f"All layers of attention stage {stage} must share one shape, got "
                             f"{tuple(student[0].shape)} (layer 0) and {tuple(a_s.shape)} (layer {layer}).")
    n_tokens = student[0].shape[-1]
    a_s = torch.stack([a.float() for a in student])  # (L, B, heads, N, N)
    a_t = torch.stack([a.detach().float() for a in teacher])
    terms = []
    for reduce in (lambda a: a.amax(0), lambda a: a.amin(0), lambda a: a.mean(0)):
        # each network's maps are enhanced by its own envelope E_k
        diff = a_s * reduce(a_s) - a_t * reduce(a_t)
        terms.append(diff.square().flatten(1).mean(1) * n_tokens**2)
    return torch.cat(terms)


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
    terms = [_stage_terms(s, t, i) for i, (s, t) in enumerate(zip(student_attn, teacher_attn))]
    return torch.cat(terms).mean()


class AttentionDistillationLoss(nn.Module):
    """Module form of :func:`attention_distillation_loss` (it has no hyper-parameters)."""

    def forward(self, student_attn: Sequence[Sequence[torch.Tensor]],
                teacher_attn: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """See :func:`attention_distillation_loss`."""
        return attention_distillation_loss(student_attn, teacher_attn)
