"""Gram-matrix style loss against hand-computed values."""
import pytest
import torch

from nnunetv2_mstkd.losses import GramStyleLoss, correlation_matrix, gram_loss, gram_matrix


def test_gram_matrix_two_channels_by_hand():
    # f = [[1, 2], [3, 4]] (C = 2, N = 2): f fᵀ = [[5, 11], [11, 25]], divided by C·N = 4.
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.equal(gram_matrix(f), expected)
    # spatial axes are flattened: a 2-D (B, C, 1, 2) map gives the same matrix
    assert torch.equal(gram_matrix(f.reshape(1, 2, 1, 2)), expected)


def test_raw_loss_by_hand():
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    zeros = torch.zeros_like(f)
    # against an all-zero teacher: mean of G² = (25 + 121 + 121 + 625) / 16 / 4
    assert gram_loss([f], [zeros], standardize=False).item() == pytest.approx(892 / 64)
    # teacher [[1, 0], [0, 1]]: G_T = I/4; G_S - G_T = [[4, 11], [11, 24]]/4
    eye = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    level = (16 + 121 + 121 + 576) / 16 / 4
    assert gram_loss([f], [eye], standardize=False).item() == pytest.approx(level)
    # levels are summed, not averaged
    assert gram_loss([f, f], [eye, zeros], standardize=False).item() == pytest.approx(level + 892 / 64)
    assert GramStyleLoss(standardize=False)([f], [eye]).item() == pytest.approx(level)


def test_standardized_loss_by_hand():
    # f = [[1, 2], [3, 4]]: each channel standardises to (−1, 1), so R_S = [[1, 1], [1, 1]].
    # teacher [[1, 0], [0, 1]]: channels (1, −1) and (−1, 1), R_T = [[1, −1], [−1, 1]].
    # R_S − R_T = [[0, 2], [2, 0]]: mean of squares 8 / 4 = 2.
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    eye = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    torch.testing.assert_close(correlation_matrix(f), torch.ones(1, 2, 2), rtol=1e-4, atol=1e-4)
    assert gram_loss([f], [eye]).item() == pytest.approx(2.0, rel=1e-4)
    assert GramStyleLoss()([f], [eye]).item() == pytest.approx(2.0, rel=1e-4)


def test_standardized_loss_ignores_feature_scale():
    # the raw Gram term grows with ‖f‖⁴; the standardised one does not change when features grow
    torch.manual_seed(4)
    s, t = torch.randn(2, 4, 3, 3, 3), torch.randn(2, 4, 3, 3, 3)
    base = gram_loss([s], [t]).item()
    assert gram_loss([10 * s + 3], [t]).item() == pytest.approx(base, rel=1e-4)
    assert gram_loss([10 * s], [t], standardize=False).item() > 1000 * gram_loss([s], [t], standardize=False).item()
    assert 0 < base <= 4


def test_loop_reference_3d():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 2, 2, 2), torch.randn(2, 3, 2, 2, 2)
    total = 0.0
    for b in range(2):
        for i in range(3):
            for j in range(3):
                g_s = sum(s[b, i].flatten()[k] * s[b, j].flatten()[k] for k in range(8)) / 24
                g_t = sum(t[b, i].flatten()[k] * t[b, j].flatten()[k] for k in range(8)) / 24
                total += float(g_s - g_t) ** 2
    assert gram_loss([s], [t], standardize=False).item() == pytest.approx(total / 18, rel=1e-5)


def test_zero_when_equal():
    f = torch.randn(2, 4, 3, 3)
    assert gram_loss([f], [f.clone()]).item() == 0.0


def test_gradients_reach_student_only():
    s = torch.randn(1, 2, 3, 3, requires_grad=True)
    t = torch.randn(1, 2, 3, 3, requires_grad=True)
    gram_loss([s], [t]).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_finite_for_zeros_and_float16():
    zeros = torch.zeros(1, 2, 3, 3)
    assert gram_loss([zeros], [zeros]).item() == 0.0
    half = torch.full((1, 2, 4, 4), 60000.0, dtype=torch.float16)  # f fᵀ would overflow float16
    loss = gram_loss([half], [torch.zeros_like(half)], standardize=False)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("student, teacher, error", [
    ([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 3, 3, 3)], ValueError),
    ([torch.zeros(1, 2, 3)], [torch.zeros(1, 2, 3)] * 2, ValueError),
    ([torch.zeros(1, 2)], [torch.zeros(1, 2)], ValueError),
    (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), TypeError),
])
def test_invalid_inputs_raise(student, teacher, error):
    with pytest.raises(error):
        gram_loss(student, teacher)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_correlation_distance_equals_autograd_through_the_matrices(dtype):
    """The hand-written backward (which keeps only the student's map) gives autograd's value and gradient."""
    from nnunetv2_mstkd.losses.correlation_distance import correlation_distance

    g = torch.Generator().manual_seed(0)
    s = (torch.randn(2, 6, 5, 4, 3, generator=g) * 2 + 1).to(dtype).requires_grad_()
    t = torch.randn(2, 6, 5, 4, 3, generator=g).to(dtype)
    reference = (correlation_matrix(s) - correlation_matrix(t)).square().mean()
    reference.backward()
    expected, s.grad = s.grad.clone(), None
    value = correlation_distance(s, t)
    value.backward()
    torch.testing.assert_close(value, reference, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s.grad.float(), expected.float(), rtol=1e-5, atol=1e-8)
    assert value.dtype == torch.float32 and s.grad.dtype == dtype
