"""The attention term from queries and keys equals the term of the explicit maps, value and gradient."""
from __future__ import annotations

import pytest
import torch

from nnunetv2_mstkd.losses import attention_kd
from nnunetv2_mstkd.losses.attention_kd import attention_distillation_loss
from nnunetv2_mstkd.losses.attention_kd_qk import attention_distillation_loss_qk
from nnunetv2_mstkd.network.transformer import attention_probabilities


def _qk(seed, stages=((2, 2, 24, 8), (2, 4, 9, 16)), layers=3, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return [[(torch.randn(*shape, generator=g) * scale, torch.randn(*shape, generator=g) * scale)
             for _ in range(layers)] for shape in stages]


def _leaf(qk):
    return [[(q.clone().requires_grad_(), k.clone().requires_grad_()) for q, k in stage] for stage in qk]


@pytest.mark.parametrize("chunk", [attention_kd.CPU_CHUNK, 50])
def test_value_and_gradient_equal_the_map_based_term(monkeypatch, chunk):
    monkeypatch.setattr(attention_kd, "CPU_CHUNK", chunk)  # 50 entries: one query row per block
    student, teacher = _qk(0), _qk(1)
    ref_s, new_s = _leaf(student), _leaf(student)
    maps_s = [[attention_probabilities(q, k) for q, k in stage] for stage in ref_s]
    maps_t = [[attention_probabilities(q, k) for q, k in stage] for stage in teacher]
    reference = attention_distillation_loss(maps_s, maps_t)
    reference.backward()
    value = attention_distillation_loss_qk(new_s, teacher)
    value.backward()
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-7)
    assert 0.01 < float(value.detach()) < 2
    for stage_ref, stage_new in zip(ref_s, new_s):
        for (q0, k0), (q1, k1) in zip(stage_ref, stage_new):
            torch.testing.assert_close(q1.grad, q0.grad, rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(k1.grad, k0.grad, rtol=1e-4, atol=1e-7)
            assert q1.grad.abs().max() > 0


def test_equal_inputs_give_zero_and_half_precision_inputs_get_half_precision_gradients():
    student = _leaf(_qk(2))
    assert float(attention_distillation_loss_qk(student, _qk(2)).detach()) == 0.0
    bf16 = [[(q.detach().bfloat16().requires_grad_(), k.detach().bfloat16()) for q, k in stage] for stage in student]
    value = attention_distillation_loss_qk(bf16, _qk(3))
    value.backward()
    assert value.dtype == torch.float32 and bf16[0][0][0].grad.dtype == torch.bfloat16


def test_shapes_are_checked():
    student, teacher = _qk(0), _qk(1)
    teacher[1][2] = (teacher[1][2][0][:, :, :5], teacher[1][2][1])
    with pytest.raises(ValueError, match="stage 1, layer 2"):
        attention_distillation_loss_qk(student, teacher)
    with pytest.raises(ValueError):
        attention_distillation_loss_qk(student, teacher[:1])
