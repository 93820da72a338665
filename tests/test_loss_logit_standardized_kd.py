"""Logit-standardised KD (DMLD mode 2) against closed forms and a loop reference."""
import math

import numpy as np
import pytest
import torch

from nnunetv2_mstkd.losses import LogitStandardizedKDLoss, logit_standardized_kd_loss


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def reference_lskd(student, teacher, region, temperature, eps=1e-7, ddof=0):
    """Explicit loops in float64: z-score, temperature, KL, mean, times T^2."""
    s, t = np.asarray(student, dtype=np.float64), np.asarray(teacher, dtype=np.float64)
    b_size, c_size = s.shape[:2]
    s, t = s.reshape(b_size, c_size, -1), t.reshape(b_size, c_size, -1)
    n_vox = s.shape[2]
    kls = []
    if region:
        for b in range(b_size):
            for c in range(c_size):
                zs = (s[b, c] - s[b, c].mean()) / (s[b, c].std(ddof=ddof) + eps) / temperature
                zt = (t[b, c] - t[b, c].mean()) / (t[b, c].std(ddof=ddof) + eps) / temperature
                for v in range(n_vox):
                    ps, pt = sigmoid(zs[v]), sigmoid(zt[v])
                    kls.append(pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps)))
    else:
        for b in range(b_size):
            for v in range(n_vox):
                zs, zt = s[b, :, v], t[b, :, v]
                zs = (zs - zs.mean()) / (zs.std(ddof=ddof) + eps) / temperature
                zt = (zt - zt.mean()) / (zt.std(ddof=ddof) + eps) / temperature
                ps, pt = np.exp(zs) / np.exp(zs).sum(), np.exp(zt) / np.exp(zt).sum()
                kls.append(sum(pt[c] * math.log(pt[c] / ps[c]) for c in range(c_size)))
    return float(np.mean(kls)) * temperature**2


def test_label_closed_form_two_classes():
    # teacher (3, 1) and student (0, 2) z-score to (1, -1) and (-1, 1) (population std 1).
    # With a = σ(2/T): p_T = (a, 1-a), p_S = (1-a, a), KL = (2a - 1) * 2/T, times T^2 -> 2T(2a - 1).
    t = torch.tensor([[[3.0], [1.0]]])
    s = torch.tensor([[[0.0], [2.0]]])
    temp = 7.0
    expected = 2 * temp * (2 * sigmoid(2 / temp) - 1)
    assert logit_standardized_kd_loss(s, t, region=False).item() == pytest.approx(expected, rel=1e-5)
    assert LogitStandardizedKDLoss(region=False)(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_region_closed_form_two_voxels():
    # one region, voxels (3, 1) for the teacher and (0, 2) for the student: z-scored (1, -1) and (-1, 1).
    # With b = σ(1/T) each voxel's Bernoulli KL is (2b - 1)/T; times T^2 -> T(2b - 1).
    t = torch.tensor([[[3.0, 1.0]]])
    s = torch.tensor([[[0.0, 2.0]]])
    temp = 4.0
    expected = temp * (2 * sigmoid(1 / temp) - 1)
    assert logit_standardized_kd_loss(s, t, region=True, temperature=temp).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("region", [True, False])
@pytest.mark.parametrize("unbiased", [False, True])
def test_matches_loop_reference(region, unbiased):
    torch.manual_seed(0)
    s = torch.randn(2, 3, 3, 2) * 3
    t = torch.randn(2, 3, 3, 2) * 5 + 1
    expected = reference_lskd(s.numpy(), t.numpy(), region, 7.0, ddof=int(unbiased))
    loss = logit_standardized_kd_loss(s, t, region, unbiased=unbiased)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_invariant_to_teacher_scale_and_shift():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    for region in (True, False):
        # (the shift moves logits across 0, which decides which regions count as present)
        base = logit_standardized_kd_loss(s, t, region, skip_absent_regions=False).item()
        shifted = logit_standardized_kd_loss(s, 3 * t + 2, region, skip_absent_regions=False).item()
        assert shifted == pytest.approx(base, rel=1e-4)


def test_region_absent_from_teacher_is_left_out_by_hand():
    # Region 0: teacher (2, -2) z-scores to (1, -1), student (0, 0) to (0, 0). With T = 1 each voxel's
    # Bernoulli KL is KL(σ(1) ‖ ½) = σ(1) ln(2σ(1)) + σ(−1) ln(2σ(−1)) = 0.110944.
    # Region 1: the teacher sees nothing (−3, −3.1): it z-scores to (1, −1), like the student's (5, −5),
    # so its KL is 0. Kept, it halves the mean; left out, the loss is region 0's alone.
    t = torch.tensor([[[2.0, -2.0], [-3.0, -3.1]]])
    s = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    a = sigmoid(1.0)
    kl0 = a * math.log(2 * a) + (1 - a) * math.log(2 * (1 - a))
    assert kl0 == pytest.approx(0.110944, rel=1e-5)
    assert logit_standardized_kd_loss(s, t, True, temperature=1.0).item() == pytest.approx(kl0, rel=1e-4)
    kept = logit_standardized_kd_loss(s, t, True, temperature=1.0, skip_absent_regions=False).item()
    assert kept == pytest.approx(kl0 / 2, rel=1e-4)
    # nothing present anywhere: 0, and still differentiable
    s_grad = s.clone().requires_grad_()
    none = logit_standardized_kd_loss(s_grad, -t.abs() - 1, True)
    none.backward()
    assert none.item() == 0.0 and s_grad.grad is not None


@pytest.mark.parametrize("region", [True, False])
def test_zero_when_equal(region):
    z = torch.randn(2, 3, 4, 4)
    assert logit_standardized_kd_loss(z, z.clone(), region).item() == 0.0


@pytest.mark.parametrize("region", [True, False])
def test_gradients_reach_student_only(region):
    s = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    logit_standardized_kd_loss(s, t, region).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("region", [True, False])
@pytest.mark.parametrize("unbiased", [False, True])
def test_finite_for_zeros_constant_and_float16(region, unbiased):
    zeros = torch.zeros(1, 3, 2, 2)
    assert logit_standardized_kd_loss(zeros, zeros, region, unbiased=unbiased).item() == 0.0
    const = logit_standardized_kd_loss(torch.full((1, 3, 2, 2), 4.0), torch.randn(1, 3, 2, 2), region,
                                       unbiased=unbiased)
    assert torch.isfinite(const)
    half_s = torch.tensor([[[60000.0, -60000.0], [0.0, 1.0], [-3.0, 3.0]]], dtype=torch.float16)
    half_t = torch.tensor([[[1.0, 2.0], [0.5, -1.0], [2.0, 2.0]]], dtype=torch.float16)
    loss = logit_standardized_kd_loss(half_s, half_t, region, unbiased=unbiased)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0
    single_voxel = logit_standardized_kd_loss(torch.randn(1, 2, 1), torch.randn(1, 2, 1), region, unbiased=unbiased)
    assert torch.isfinite(single_voxel)


@pytest.mark.parametrize("student, teacher, region, kwargs, error", [
    (torch.zeros(1, 3, 4), torch.zeros(1, 3, 5), True, {}, ValueError),
    (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), False, {}, ValueError),  # one class
    (torch.zeros(2, 3), torch.zeros(2, 3), True, {}, ValueError),  # region mode without spatial axes
    (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4), True, {"temperature": 0.0}, ValueError),
    ([torch.zeros(1, 3, 4)], [torch.zeros(1, 3, 4)], True, {}, TypeError),
])
def test_invalid_inputs_raise(student, teacher, region, kwargs, error):
    with pytest.raises(error):
        logit_standardized_kd_loss(student, teacher, region, **kwargs)
    with pytest.raises(ValueError):
        LogitStandardizedKDLoss(region=True, temperature=-1.0)
