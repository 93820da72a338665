"""Enhanced attention distillation (EVD) against hand-computed values."""
import itertools

import pytest
import torch

from nnunetv2_mstkd.losses import AttentionDistillationLoss, attention_distillation_loss


def reference_evd(student, teacher):
    """EVD with explicit loops over stages, layers, envelopes and entries of nested lists."""
    terms = []
    for s_layers, t_layers in zip(student, teacher):
        n_layers, b, h, n = len(s_layers), len(s_layers[0]), len(s_layers[0][0]), len(s_layers[0][0][0])
        for l_idx in range(n_layers):
            for env in (max, min, lambda vals: sum(vals) / len(vals)):
                sq = 0.0
                for i, j, p, q in itertools.product(range(b), range(h), range(n), range(n)):
                    e_s = env([layer[i][j][p][q] for layer in s_layers])
                    e_t = env([layer[i][j][p][q] for layer in t_layers])
                    sq += (s_layers[l_idx][i][j][p][q] * e_s - t_layers[l_idx][i][j][p][q] * e_t) ** 2
                terms.append(sq / (b * h * n * n) * n * n)
    return sum(terms) / len(terms)


# one stage, two layers of 1x1x2x2 row-stochastic maps
S1 = [[[[0.5, 0.5], [0.2, 0.8]]]]
S2 = [[[[0.9, 0.1], [0.4, 0.6]]]]
T1 = [[[[1.0, 0.0], [0.0, 1.0]]]]
T2 = [[[[0.5, 0.5], [0.5, 0.5]]]]


def as_tensors(stages, requires_grad=False):
    return [[torch.tensor(a, requires_grad=requires_grad) for a in layers] for layers in stages]


def test_hand_computed_single_stage():
    # Worked by hand. Each (l, k) term is N^2 * mean over 4 entries = the sum over entries, and the
    # loss is the mean of the 6 terms. Entry (0,0): E^S = (max .9, min .5, mean .7), E^T = (1, .5, .75);
    # layer 1: (.45-1)^2 + (.25-.5)^2 + (.35-.75)^2, layer 2: (.81-.5)^2 + (.45-.25)^2 + (.63-.375)^2,
    # summing to .726125. Entries (0,1), (1,0), (1,1) give .136625, .026125, .180625.
    by_hand = (0.726125 + 0.136625 + 0.026125 + 0.180625) / 6
    assert by_hand == pytest.approx(0.17825)
    assert reference_evd([[S1, S2]], [[T1, T2]]) == pytest.approx(by_hand)
    loss = attention_distillation_loss(as_tensors([[S1, S2]]), as_tensors([[T1, T2]]))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)


def test_hand_computed_entry_by_hand():
    # one layer: all envelopes equal A itself, so each term is N^2 * mean((A_S^2 - A_T^2)^2).
    a_s = [[[[0.5, 0.5], [0.2, 0.8]]]]
    a_t = [[[[1.0, 0.0], [0.0, 1.0]]]]
    per_entry = [(0.25 - 1) ** 2, 0.25**2, 0.04**2, (0.64 - 1) ** 2]
    expected = sum(per_entry) / 4 * 4  # mean over entries, times N^2 = 4; same for all three k
    loss = attention_distillation_loss([[torch.tensor(a_s)]], [[torch.tensor(a_t)]])
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_two_stages_with_different_token_counts():
    torch.manual_seed(0)
    student = [[torch.softmax(torch.randn(2, 2, 3, 3), -1) for _ in range(2)],
               [torch.softmax(torch.randn(2, 2, 2, 2), -1) for _ in range(2)]]
    teacher = [[torch.softmax(torch.randn(2, 2, 3, 3), -1) for _ in range(2)],
               [torch.softmax(torch.randn(2, 2, 2, 2), -1) for _ in range(2)]]
    expected = reference_evd([[a.tolist() for a in s] for s in student], [[a.tolist() for a in s] for s in teacher])
    assert attention_distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert AttentionDistillationLoss()(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_zero_when_equal():
    attn = as_tensors([[S1, S2]])
    assert attention_distillation_loss(attn, as_tensors([[S1, S2]])).item() == 0.0


def test_gradients_reach_student_only():
    student = as_tensors([[S1, S2]], requires_grad=True)
    teacher = as_tensors([[T1, T2]], requires_grad=True)
    attention_distillation_loss(student, teacher).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in student[0])
    assert all(a.grad is None for a in teacher[0])


def test_finite_for_zeros_and_float16():
    zeros = [[torch.zeros(1, 2, 4, 4) for _ in range(2)]]
    assert attention_distillation_loss(zeros, zeros).item() == 0.0
    torch.manual_seed(1)
    half_s = [[torch.softmax(torch.randn(1, 2, 4, 4), -1).half() for _ in range(2)]]
    half_t = [[torch.softmax(torch.randn(1, 2, 4, 4), -1).half() for _ in range(2)]]
    loss = attention_distillation_loss(half_s, half_t)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("student, teacher, error", [
    ([[torch.zeros(1, 1, 2, 2)]], [[torch.zeros(1, 1, 3, 3)]], ValueError),  # N differs
    ([[torch.zeros(1, 1, 2, 2)]], [[torch.zeros(1, 1, 2, 2)] * 2], ValueError),  # layer count differs
    ([[torch.zeros(1, 1, 2, 2)]], [[torch.zeros(1, 1, 2, 2)]] * 2, ValueError),  # stage count differs
    ([[torch.zeros(1, 1, 2, 3)]], [[torch.zeros(1, 1, 2, 3)]], ValueError),  # not square
    ([[torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)]], [[torch.zeros(1, 2, 2)] * 2], ValueError),  # 3-D maps
    ([[torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3)]], [[torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3)]],
     ValueError),  # layers of one stage disagree
    ([], [], ValueError),
    ([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 2)], TypeError),  # stage given as a bare tensor
])
def test_invalid_inputs_raise(student, teacher, error):
    with pytest.raises(error):
        attention_distillation_loss(student, teacher)


def autograd_evd(student, teacher):
    """EVD written with plain tensor ops, so autograd derives its gradient."""
    terms = []
    for s_layers, t_layers in zip(student, teacher):
        a_s, a_t = torch.stack(s_layers).double(), torch.stack(t_layers).double().detach()
        for reduce in (lambda a: a.amax(0), lambda a: a.amin(0), lambda a: a.mean(0)):
            diff = a_s * reduce(a_s) - a_t * reduce(a_t)
            terms.append(diff.square().flatten(1).mean(1) * a_s.shape[-1] ** 2)
    return torch.cat(terms).mean()


@pytest.mark.parametrize("tied", [False, True])
def test_hand_written_gradient_matches_autograd(tied):
    # The loss has its own backward; it must equal autograd's, including at layers that tie
    # (uniform attention makes every layer tie), where amax/amin share the gradient between them.
    torch.manual_seed(2)
    shapes = [(2, 2, 3, 3), (1, 1, 2, 2)]
    student = [[torch.softmax(torch.randn(s), -1) for _ in range(3)] for s in shapes]
    if tied:
        student[0][1] = student[0][0].clone()
        student[1] = [torch.full(shapes[1], 0.5) for _ in range(3)]
    teacher = [[torch.softmax(torch.randn(s), -1) for _ in range(3)] for s in shapes]
    leaves = [[a.clone().requires_grad_() for a in s] for s in student]
    ours = attention_distillation_loss(leaves, teacher)
    ours.backward()
    ref_leaves = [[a.clone().double().requires_grad_() for a in s] for s in student]
    ref = autograd_evd(ref_leaves, teacher)
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    for got_stage, ref_stage in zip(leaves, ref_leaves):
        for got, want in zip(got_stage, ref_stage):
            torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-7)
