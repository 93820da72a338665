"""Multi-scale feature distillation against hand-computed values."""
import numpy as np
import pytest
import torch

from nnunetv2_mstkd.losses import FeatureDistillationLoss, feature_distillation_loss, standardize_per_channel


def reference_feature_kd(student, teacher, eps):
    """Per-sample, per-channel standardisation with numpy loops, then the mean over scales of the MSE."""
    per_scale = []
    for f_s, f_t in zip(student, teacher):
        f_s, f_t = np.asarray(f_s, dtype=np.float64), np.asarray(f_t, dtype=np.float64)
        sq = []
        for b in range(f_s.shape[0]):
            for c in range(f_s.shape[1]):
                a, t = f_s[b, c].ravel(), f_t[b, c].ravel()
                a = (a - a.mean()) / np.sqrt(a.var() + eps)
                t = (t - t.mean()) / np.sqrt(t.var() + eps)
                sq.extend((a - t) ** 2)
        per_scale.append(np.mean(sq))
    return float(np.mean(per_scale))


def test_anti_correlated_map_gives_four():
    # x = [1,2,3,4] standardised (eps 0) has unit mean square; the reversed map is its negative,
    # so the MSE is mean((2 x̂)^2) = 4.
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    t = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
    assert feature_distillation_loss([s], [t], eps=0.0).item() == pytest.approx(4.0, rel=1e-6)
    # with eps the variance 1.25 becomes 1.25 + eps
    assert feature_distillation_loss([s], [t]).item() == pytest.approx(4 * 1.25 / (1.25 + 1e-5), rel=1e-6)


def test_two_channels_and_two_scales():
    # channel 0: teacher = 3*student + 7 (same after standardising, 0); channel 1: reversed (4) -> scale 1 = 2.
    # scale 2: identical maps -> 0. Mean over scales: 1.
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(2, 2)
    s1 = torch.stack([x, x])[None]
    t1 = torch.stack([3 * x + 7, x.flip(0).flip(1)])[None]
    s2 = torch.randn(1, 3, 2, 2, 2)
    loss = feature_distillation_loss([s1, s2], [t1, s2.clone()], eps=0.0)
    assert loss.item() == pytest.approx(1.0, rel=1e-5)


def test_matches_loop_reference_2d_and_3d():
    torch.manual_seed(0)
    student = [torch.randn(2, 3, 4, 4, 4), torch.randn(2, 5, 2, 2, 2), torch.randn(2, 2, 3, 5)]
    teacher = [torch.randn_like(f) * 4 + 1 for f in student]
    expected = reference_feature_kd([f.numpy() for f in student], [f.numpy() for f in teacher], 1e-5)
    assert feature_distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert FeatureDistillationLoss(eps=1e-5)(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_standardisation_is_per_sample_and_channel():
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 4) * torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1) + 5
    z = standardize_per_channel(f, eps=0.0)
    assert torch.allclose(z.mean((2, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(z.var((2, 3), unbiased=False), torch.ones(2, 3), atol=1e-4)


def test_zero_when_equal():
    f = [torch.randn(2, 3, 4, 4)]
    assert feature_distillation_loss(f, [f[0].clone()]).item() == 0.0


def test_gradients_reach_student_only():
    s = torch.randn(1, 2, 3, 3, requires_grad=True)
    t = torch.randn(1, 2, 3, 3, requires_grad=True)
    feature_distillation_loss([s], [t]).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_finite_for_zeros_constant_and_float16():
    zeros = torch.zeros(1, 2, 3, 3)
    assert feature_distillation_loss([zeros], [zeros]).item() == 0.0
    loss = feature_distillation_loss([torch.full((1, 2, 3, 3), 5.0)], [torch.randn(1, 2, 3, 3)])
    assert torch.isfinite(loss)
    half = feature_distillation_loss([(torch.randn(1, 2, 4, 4) * 1000).half()], [torch.randn(1, 2, 4, 4).half()])
    assert half.dtype == torch.float32 and torch.isfinite(half)


@pytest.mark.parametrize("student, teacher, error", [
    ([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 3, 4)], ValueError),
    ([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 3, 3)] * 2, ValueError),
    ([torch.zeros(1, 2)], [torch.zeros(1, 2)], ValueError),  # no spatial axes
    (torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), TypeError),  # bare tensor, not a list
])
def test_invalid_inputs_raise(student, teacher, error):
    with pytest.raises(error):
        feature_distillation_loss(student, teacher)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block", [10, 1 << 24])
def test_blockwise_standardised_mse_equals_autograd_through_the_standardised_maps(dtype, block):
    """Block by block (10 elements: one row at a time) with a hand-written backward: autograd's value and gradient."""
    from nnunetv2_mstkd.losses.standardized_mse import standardized_mse

    g = torch.Generator().manual_seed(1)
    s = (torch.randn(2, 5, 6, 7, 8, generator=g) * 3 + 1).to(dtype).requires_grad_()
    t = torch.randn(2, 5, 6, 7, 8, generator=g).to(dtype)
    reference = (standardize_per_channel(s) - standardize_per_channel(t)).square().mean()
    reference.backward()
    expected, s.grad = s.grad.clone(), None
    value = standardized_mse(s, t, block_elements=block)
    value.backward()
    torch.testing.assert_close(value, reference, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.grad.float(), expected.float(), rtol=1e-5, atol=1e-9)
    assert value.dtype == torch.float32 and s.grad.dtype == dtype
