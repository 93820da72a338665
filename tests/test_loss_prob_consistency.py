"""Probability consistency (DMLD mode 1) and its ramp against hand-computed values."""
import math

import pytest
import torch

from nnunetv2_mstkd.losses import ProbabilityConsistencyLoss, consistency_ramp, probability_consistency_loss


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_sigmoid_two_voxels():
    # one region, two voxels: student logits (0, 2), teacher (0, -2) -> probabilities (.5, σ(2)) and (.5, σ(-2))
    s = torch.tensor([[[0.0, 2.0]]])
    t = torch.tensor([[[0.0, -2.0]]])
    expected = (0.0 + (sigmoid(2) - sigmoid(-2)) ** 2) / 2
    assert probability_consistency_loss(s, t, region=True).item() == pytest.approx(expected, rel=1e-6)
    assert ProbabilityConsistencyLoss(region=True)(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_softmax_two_voxels():
    # two classes, two voxels; softmax over axis 1: p(class 1) = σ(z1 - z0).
    s = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # voxel 0: (1, 0), voxel 1: (0, 0)
    t = torch.tensor([[[0.0, 3.0], [0.0, 0.0]]])  # voxel 0: (0, 0), voxel 1: (3, 0)
    d0 = sigmoid(1) - 0.5  # class-0 probability gap at voxel 0; class 1 gap is its negative
    d1 = 0.5 - sigmoid(3)
    expected = (2 * d0**2 + 2 * d1**2) / 4
    assert probability_consistency_loss(s, t, region=False).item() == pytest.approx(expected, rel=1e-6)


def test_zero_when_equal():
    z = torch.randn(2, 3, 4, 4)
    for region in (True, False):
        assert probability_consistency_loss(z, z.clone(), region).item() == 0.0


def test_gradients_reach_student_only():
    s = torch.randn(2, 3, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, requires_grad=True)
    probability_consistency_loss(s, t, region=False).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("region", [True, False])
def test_finite_for_zeros_and_float16(region):
    zeros = torch.zeros(1, 3, 2, 2)
    assert probability_consistency_loss(zeros, zeros, region).item() == 0.0
    s = torch.tensor([[[60000.0, -60000.0], [0.0, 1.0], [-3.0, 3.0]]], dtype=torch.float16)
    loss = probability_consistency_loss(s, torch.zeros_like(s), region)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("student, teacher, region, error", [
    (torch.zeros(1, 3, 4), torch.zeros(1, 3, 5), True, ValueError),
    (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), False, ValueError),  # softmax over one class
    (torch.zeros(3), torch.zeros(3), True, ValueError),
    ([torch.zeros(1, 3, 4)], [torch.zeros(1, 3, 4)], True, TypeError),  # deep-supervision list
])
def test_invalid_inputs_raise(student, teacher, region, error):
    with pytest.raises(error):
        probability_consistency_loss(student, teacher, region)


def test_ramp_values():
    assert consistency_ramp(0, 20) == pytest.approx(10 * math.exp(-5))
    assert consistency_ramp(10, 20) == pytest.approx(10 * math.exp(-1.25))
    assert consistency_ramp(20, 20) == 10.0
    assert consistency_ramp(57, 20) == 10.0
    assert consistency_ramp(5, 0) == 10.0  # no ramp
    assert consistency_ramp(0, 20, max_weight=2.0) == pytest.approx(2 * math.exp(-5))
    assert isinstance(consistency_ramp(3, 20.0), float)
    with pytest.raises(ValueError):
        consistency_ramp(-1, 20)
