"""Adversarial style losses against closed forms."""
import math

import pytest
import torch

from nnunetv2_mstkd.losses import DiscriminatorLoss, GeneratorLoss, discriminator_loss, generator_loss


def test_zero_logits_give_log_two():
    z = torch.zeros(3)
    assert discriminator_loss(z, z).item() == pytest.approx(2 * math.log(2))
    assert generator_loss(z).item() == pytest.approx(math.log(2))


def test_closed_form():
    # BCE(x, 1) = log(1 + e^-x), BCE(x, 0) = log(1 + e^x), each averaged over the batch
    real = torch.tensor([2.0, -1.0])
    fake = torch.tensor([[0.5], [-3.0]])
    expected_d = (math.log1p(math.exp(-2)) + math.log1p(math.exp(1))) / 2 \
        + (math.log1p(math.exp(0.5)) + math.log1p(math.exp(-3))) / 2
    expected_g = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(3))) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert DiscriminatorLoss()(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)
    assert GeneratorLoss()(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_generator_gradient_pushes_student_logit_up():
    fake = torch.tensor([0.0, 1.0], requires_grad=True)
    generator_loss(fake).backward()
    # d/dx log(1 + e^-x) = -(1 - σ(x)), halved by the batch mean
    assert fake.grad.tolist() == pytest.approx([-0.25, -(1 - 1 / (1 + math.exp(-1))) / 2])


def test_finite_for_extreme_and_float16_logits():
    big = torch.tensor([60000.0, -60000.0], dtype=torch.float16)
    d = discriminator_loss(big, big)
    g = generator_loss(big)
    assert d.dtype == g.dtype == torch.float32
    assert torch.isfinite(d) and torch.isfinite(g)
    assert g.item() == pytest.approx(60000.0 / 2)  # the -60000 logit costs 60000, the other 0


@pytest.mark.parametrize("logits, error", [
    (torch.zeros(2, 2), ValueError),  # two logits per sample
    (torch.zeros(2, 1, 1), ValueError),
    (torch.zeros(0), ValueError),
    ([0.0, 1.0], TypeError),
])
def test_invalid_inputs_raise(logits, error):
    with pytest.raises(error):
        generator_loss(logits)
    with pytest.raises(error):
        discriminator_loss(torch.zeros(2), logits)
