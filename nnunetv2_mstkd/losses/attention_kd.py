"""Enhanced attention distillation (EVD), the attention half of MS-TKD (METHOD §4.1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunetv2_mstkd.losses._checks import check_pair_of_sequences, check_same_shape

#: Entries per layer handled at once on a CPU: keeps every temporary of a chunk in the cache.
CPU_CHUNK = 1 << 16
#: Share of the free GPU memory that one chunk's temporaries may take, and an upper bound in bytes.
GPU_MEMORY_SHARE, GPU_MEMORY_CAP = 0.25, 1 << 30


def chunk_entries(num_layers: int, numel: int, itemsize: int, device_type: str,
                  free_bytes: int | None = None) -> int:
    """Entries per layer processed at once by the attention loss.

    On a CPU, :data:`CPU_CHUNK` (cache-sized chunks were measured fastest). On a GPU, as
    many as fit in :data:`GPU_MEMORY_SHARE` of the free memory (at most
    :data:`GPU_MEMORY_CAP` bytes), counting about ``4 L + 20`` map-sized temporaries per
    entry: usually the whole map in one chunk, so a 128³ patch costs a few kernel launches
    instead of thousands.

    Args:
        num_layers: Attention layers L of the stage.
        numel: Entries of one layer's attention map.
        itemsize: Bytes per entry (4 for float32, 2 under autocast).
        device_type: ``"cpu"``, ``"cuda"`` ...
        free_bytes: Free device memory; read from the device when None.
    """
    if device_type != "cuda":
        return max(1, min(CPU_CHUNK, numel))
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info()[0]
    budget = min(int(free_bytes * GPU_MEMORY_SHARE), GPU_MEMORY_CAP)
    per_entry = (4 * num_layers + 20) * itemsize
    return max(1, min(numel, max(CPU_CHUNK, budget // per_entry)))


def enhanced_terms(a: torch.Tensor, b: torch.Tensor, want_grad: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The enhanced-map terms of one chunk of entries, stacked over layers: ``a`` student, ``b`` teacher ``(L, ...)``.

    Returns:
        ``(Σ squared error, ½ Σ (‖A ⊙ E‖² + ‖B ⊙ F‖²), ∂ error / ∂a / 2 or None)`` as in
        :class:`_EnhancedSquaredError`'s formulas.
    """
    num_layers = a.shape[0]
    # each network's maps are enhanced by its own envelopes (max, min, mean over layers)
    e = (a.amax(0), a.amin(0), a.mean(0))
    f = (b.amax(0), b.amin(0), b.mean(0))
    s_aa, s_ab, s_bb = (a * a).sum(0), (a * b).sum(0), (b * b).sum(0)
    p, q, r = e[0] * e[0], e[0] * f[0], f[0] * f[0]
    for k in (1, 2):
        p.addcmul_(e[k], e[k])
        q.addcmul_(e[k], f[k])
        r.addcmul_(f[k], f[k])
    # Σ_k Σ_l ‖a_l e_k − b_l f_k‖² = P S_aa − 2 Q S_ab + R S_bb: no (3, L, C) temporaries.
    # Equal maps give x − 2x + x, exactly 0; the clamp stops rounding from going below 0.
    own_a, own_b = p * s_aa, r * s_bb
    partial = (own_a + own_b).sub_(q * s_ab, alpha=2).clamp_min_(0).sum()
    scale = 0.5 * (own_a.sum() + own_b.sum())
    if not want_grad:
        return partial, scale, None
    chunk = a * p
    chunk.addcmul_(b, q, value=-1)
    chunk += torch.addcmul(e[2] * s_aa, f[2], s_ab, value=-1).div_(num_layers)
    for k in (0, 1):
        g = torch.addcmul(e[k] * s_aa, f[k], s_ab, value=-1)
        # like torch.amax/amin, tied layers share the gradient
        # a float `out` makes eq write 1.0/0.0 directly, several times faster than bool then cast
        hit = torch.eq(a, e[k], out=torch.empty_like(a))
        chunk.addcmul_(hit, g.div_(hit.sum(0)))
    return partial, scale, chunk


class _EnhancedSquaredError(torch.autograd.Function):
    """``Σ_k Σ_l ‖A_l ⊙ E_k(A) − B_l ⊙ E_k(B)‖²`` of one stage (student A, teacher B), gradient included.

    Also returns, without gradient, the scale ``½ Σ_k Σ_l (‖A_l ⊙ E_k(A)‖² + ‖B_l ⊙ E_k(B)‖²)``.

    The attention maps are the largest tensors of a training step. Autograd through
    ``amax``/``amin``/``mean`` and the products would allocate a dozen map-sized
    temporaries and walk them again backwards; here the maps are processed in
    cache-sized chunks, sums over layers and envelopes are expanded so that only
    entry-sized tensors appear besides the stacked chunk, and the gradient is written out
    while the chunk is at hand. With ``E_k = E_k(A)``, ``F_k = E_k(B)``, ``S_AA = Σ_l A_l²``,
    ``S_AB = Σ_l A_l ⊙ B_l``, ``P = Σ_k E_k²``, ``Q = Σ_k E_k F_k``, ``R = Σ_k F_k²``::

        loss = Σ (P S_AA − 2 Q S_AB + R S_BB),   g_k = E_k S_AA − F_k S_AB
        ∂/∂A_l = 2 [ A_l P − B_l Q + g_mean / L + m^max_l ⊙ g_max + m^min_l ⊙ g_min ]

    where ``m^max_l`` is 1/count on the layers that attain the maximum (0 elsewhere), which
    shares the gradient between tied layers the way ``torch.amax`` does.
    """

    @staticmethod
    def forward(ctx, num_layers: int, *maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        student = [a.reshape(-1) for a in maps[:num_layers]]
        teacher = [b.reshape(-1) for b in maps[num_layers:]]
        want_grad = any(ctx.needs_input_grad[1:num_layers + 1])
        grad = torch.empty((num_layers, student[0].numel()), dtype=student[0].dtype,
                           device=student[0].device) if want_grad else None
        partial, scale = [], []
        step = chunk_entries(num_layers, student[0].numel(), student[0].element_size(), student[0].device.type)
        for c0 in range(0, student[0].numel(), step):
            a = torch.stack([x[c0:c0 + step] for x in student])
            b = torch.stack([x[c0:c0 + step] for x in teacher])
            part, sc, chunk = enhanced_terms(a, b, want_grad)
            partial.append(part)
            scale.append(sc)
            if want_grad:
                grad[:, c0:c0 + step] = chunk
        ctx.num_layers = num_layers
        ctx.shape = maps[0].shape
        if want_grad:
            ctx.save_for_backward(grad)
        total_scale = torch.stack(scale).sum()
        ctx.mark_non_differentiable(total_scale)
        return torch.stack(partial).sum(), total_scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor, _grad_scale: torch.Tensor | None = None):
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


def _stage_ratio(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], eps: float) -> torch.Tensor:
    """Relative squared error of one stage's ``3 L`` enhanced pairs (the scale carries no gradient)."""
    maps = [a.float().contiguous() for a in student] + [b.detach().float().contiguous() for b in teacher]
    squared_error, scale = _EnhancedSquaredError.apply(len(student), *maps)
    return squared_error / (scale + eps)


def attention_distillation_loss(student_attn: Sequence[Sequence[torch.Tensor]],
                                teacher_attn: Sequence[Sequence[torch.Tensor]], eps: float = 1e-12) -> torch.Tensor:
    """Distil the student's attention maps towards the teacher's with enhanced maps, scale-free.

    For each transformer stage ``s`` with layers ``l = 1..L`` and attention
    probabilities ``A_l`` of shape ``(B, heads, N_s, N_s)``, each network forms
    the envelopes ``E_max = max_l A_l``, ``E_min = min_l A_l`` and
    ``E_mean = mean_l A_l`` from its own maps, and the enhanced maps
    ``Ã_{l,k} = A_l ⊙ E_k`` for ``k`` in {max, min, mean}. Then::

        L_att = mean over s of  Σ_{l,k} ‖Ã^S_{l,k} − Ã^T_{l,k}‖²  /  (½ Σ_{l,k} (‖Ã^S_{l,k}‖² + ‖Ã^T_{l,k}‖²) + eps)

    with the denominator held constant (no gradient flows through it). Entries of
    ``Ã`` are of order ``1/N²`` for near-uniform attention and of order 1 for one-hot
    attention, so a plain MSE spans many orders of magnitude between a young and a
    trained network; the ratio does not depend on ``N`` or on how sharp the maps are.
    Because every entry is non-negative, ``‖a − b‖² ≤ ‖a‖² + ‖b‖²`` and the ratio lies
    in ``[0, 2]``: 0 for equal maps, about 2 for maps that do not overlap (e.g. one-hot
    teacher against uniform student), and about the mean squared relative deviation
    ``r²`` for two near-uniform maps that differ by a relative ``r``. The normalisation
    is ours; the paper weights the raw MSE by a constant (1e8). Computed in float32;
    the teacher's maps are detached.

    Reference: Zhu et al., "Bridging the Gap in Missing Modalities: Leveraging
    Knowledge Distillation and Style Matching for Brain Tumor Segmentation",
    MICCAI 2025 (arXiv 2507.22626), enhanced attention distillation.

    Args:
        student_attn: Per stage, a sequence over layers of the student's attention
            probabilities ``(B, heads, N_s, N_s)``. ``N_s`` may differ between stages.
        teacher_attn: The teacher's maps in the same structure and shapes.
        eps: Added to the denominator (all-zero maps give 0, not NaN).

    Returns:
        A float32 scalar tensor in ``[0, 2]``.

    Raises:
        TypeError: If a stage or the whole argument is a bare tensor instead of a list.
        ValueError: If the numbers of stages or layers differ, shapes differ between
            student and teacher or between layers of a stage, or a map is not ``(B, heads, N, N)``.
    """
    check_pair_of_sequences(student_attn, teacher_attn, "attention stages")
    for i, (s, t) in enumerate(zip(student_attn, teacher_attn)):
        _check_stage(s, t, i)
    return torch.stack([_stage_ratio(s, t, eps) for s, t in zip(student_attn, teacher_attn)]).mean()


class AttentionDistillationLoss(nn.Module):
    """Module form of :func:`attention_distillation_loss` (it has no hyper-parameters)."""

    def forward(self, student_attn: Sequence[Sequence[torch.Tensor]],
                teacher_attn: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """See :func:`attention_distillation_loss`."""
        return attention_distillation_loss(student_attn, teacher_attn)
