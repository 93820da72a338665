"""Style discriminator, its optimiser and the update step."""
import copy

import pytest
import torch

from nnunetv2_mstkd.losses import discriminator_loss, generator_loss
from nnunetv2_mstkd.network.discriminator import StyleDiscriminator
from nnunetv2_mstkd.training.discriminator_training import discriminator_step, make_discriminator_optimizer


@pytest.mark.parametrize("dim, shape", [
    (3, (2, 8, 2, 2, 2)), (3, (2, 8, 4, 4, 4)), (3, (1, 8, 1, 3, 5)), (3, (2, 8, 7, 8, 9)),
    (2, (2, 8, 2, 2)), (2, (3, 8, 4, 4)), (2, (1, 8, 1, 1)),
])
def test_one_logit_per_sample_on_small_maps(dim, shape):
    torch.manual_seed(0)
    d = StyleDiscriminator(in_channels=8, dim=dim)
    out = d(torch.randn(shape))
    assert out.shape == (shape[0],)
    assert torch.isfinite(out).all()


def test_layers_and_sizes():
    d = StyleDiscriminator(in_channels=5, dim=3, base_channels=4, num_layers=3)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [4, 8, 16]
    assert all(c.kernel_size == (4, 4, 4) and c.stride == (2, 2, 2) for c in convs)
    assert d.classifier.in_features == 16
    assert d.min_input_size() == 1
    # pix2pix padding 1: each layer halves the side, so 2 layers need a side of 4
    assert StyleDiscriminator(5, 3, padding=1).min_input_size() == 4
    assert StyleDiscriminator(5, 2, padding=1)(torch.randn(1, 5, 4, 4)).shape == (1,)
    # 2 -> floor((2 + 4 - 4) / 2) + 1 = 2 with the default padding 2
    assert d.features[0](torch.randn(1, 5, 2, 2, 2)).shape[2:] == (2, 2, 2)


@pytest.mark.parametrize("kwargs, shape", [
    ({"in_channels": 8, "dim": 3}, (2, 4, 2, 2, 2)),  # wrong channels
    ({"in_channels": 8, "dim": 3}, (2, 8, 2, 2)),  # 2-D map into a 3-D discriminator
    ({"in_channels": 8, "dim": 3, "padding": 1}, (2, 8, 2, 2, 2)),  # too small for padding 1
])
def test_forward_rejects_unfit_maps(kwargs, shape):
    with pytest.raises(ValueError):
        StyleDiscriminator(**kwargs)(torch.zeros(shape))


@pytest.mark.parametrize("kwargs", [{"in_channels": 8, "dim": 1}, {"in_channels": 0, "dim": 3},
                                    {"in_channels": 8, "dim": 3, "num_layers": 0}])
def test_constructor_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        StyleDiscriminator(**kwargs)


def test_optimizer_settings():
    opt = make_discriminator_optimizer(StyleDiscriminator(4, 2))
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 1e-4
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


def toy_features():
    g = torch.Generator().manual_seed(0)
    teacher = 1.0 + 0.1 * torch.randn(4, 8, 2, 2, 2, generator=g)
    student = -1.0 + 0.1 * torch.randn(4, 8, 2, 2, 2, generator=g)
    return teacher, student


def test_steps_reduce_discriminator_loss():
    torch.manual_seed(0)
    d = StyleDiscriminator(8, 3)
    opt = make_discriminator_optimizer(d)
    teacher, student = toy_features()
    with torch.no_grad():
        before = discriminator_loss(d(teacher), d(student)).item()
    losses = [float(discriminator_step(d, opt, teacher, student)) for _ in range(10)]
    with torch.no_grad():
        after = discriminator_loss(d(teacher), d(student)).item()
    assert losses[0] == pytest.approx(before, rel=1e-6)  # the returned value is the pre-update loss
    assert after < before
    assert losses[-1] < losses[0]


def test_step_detaches_features_and_clears_generator_gradients():
    torch.manual_seed(0)
    d = StyleDiscriminator(8, 3)
    clean = copy.deepcopy(d)
    teacher, student = toy_features()
    student = student.clone().requires_grad_(True)
    teacher = teacher.clone().requires_grad_(True)
    generator_loss(d(student)).backward()  # leaves gradients in D's parameters
    student.grad = None
    opt, opt_clean = make_discriminator_optimizer(d), make_discriminator_optimizer(clean)
    discriminator_step(d, opt, teacher, student)
    discriminator_step(clean, opt_clean, teacher.detach(), student.detach())
    assert student.grad is None and teacher.grad is None
    assert all(torch.equal(a, b) for a, b in zip(d.parameters(), clean.parameters()))


def test_step_is_float32_under_autocast():
    torch.manual_seed(0)
    d = StyleDiscriminator(8, 3)
    opt = make_discriminator_optimizer(d)
    teacher, student = (f.bfloat16() for f in toy_features())
    with torch.no_grad():  # float32 maths on the bfloat16 values
        expected = discriminator_loss(d(teacher.float()), d(student.float())).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = float(discriminator_step(d, opt, teacher, student))
    # bfloat16 convolutions would differ by about 3e-5 (relative) on this example
    assert got == pytest.approx(expected, rel=1e-6)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in d.parameters())


def test_step_with_grad_scaler():
    torch.manual_seed(0)
    d = StyleDiscriminator(8, 3)
    opt = make_discriminator_optimizer(d)
    teacher, student = toy_features()
    scaler = torch.amp.GradScaler("cpu")
    losses = [float(discriminator_step(d, opt, teacher, student, grad_scaler=scaler)) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_step_rejects_mismatched_features():
    d = StyleDiscriminator(8, 3)
    with pytest.raises(ValueError):
        discriminator_step(d, make_discriminator_optimizer(d), torch.zeros(2, 8, 2, 2, 2), torch.zeros(2, 8, 4, 4, 4))


def test_optimizer_state_round_trip():
    torch.manual_seed(0)
    teacher, student = toy_features()
    d = StyleDiscriminator(8, 3)
    opt = make_discriminator_optimizer(d)
    for _ in range(3):
        discriminator_step(d, opt, teacher, student)
    checkpoint = {"d": copy.deepcopy(d.state_dict()), "opt": copy.deepcopy(opt.state_dict())}

    restored = StyleDiscriminator(8, 3)
    restored_opt = make_discriminator_optimizer(restored)
    restored.load_state_dict(checkpoint["d"])
    restored_opt.load_state_dict(checkpoint["opt"])
    first = next(iter(restored_opt.state.values()))
    assert int(first["step"]) == 3 and first["exp_avg"].abs().sum() > 0

    # the next update is identical to continuing without the round trip
    discriminator_step(d, opt, teacher, student)
    discriminator_step(restored, restored_opt, teacher, student)
    assert all(torch.equal(a, b) for a, b in zip(d.parameters(), restored.parameters()))
