"""Enhanced attention distillation (EVD) against hand-computed values."""
import itertools

import pytest
import torch

from nnunetv2_mstkd.losses import AttentionDistillationLoss, attention_distillation_loss


def reference_evd(student, teacher):
    """Scale-free EVD with explicit loops over stages, layers, envelopes and entries of nested lists."""
    ratios = []
    for s_layers, t_layers in zip(student, teacher):
        n_layers, b, h, n = len(s_layers), len(s_layers[0]), len(s_layers[0][0]), len(s_layers[0][0][0])
        sq, own = 0.0, 0.0
        for l_idx in range(n_layers):
            for env in (max, min, lambda vals: sum(vals) / len(vals)):
                for i, j, p, q in itertools.product(range(b), range(h), range(n), range(n)):
                    e_s = env([layer[i][j][p][q] for layer in s_layers])
                    e_t = env([layer[i][j][p][q] for layer in t_layers])
                    x, y = s_layers[l_idx][i][j][p][q] * e_s, t_layers[l_idx][i][j][p][q] * e_t
                    sq += (x - y) ** 2
                    own += 0.5 * (x * x + y * y)
        ratios.append(sq / own)
    return sum(ratios) / len(ratios)


# one stage, two layers of 1x1x2x2 row-stochastic maps
S1 = [[[[0.5, 0.5], [0.2, 0.8]]]]
S2 = [[[[0.9, 0.1], [0.4, 0.6]]]]
T1 = [[[[1.0, 0.0], [0.0, 1.0]]]]
T2 = [[[[0.5, 0.5], [0.5, 0.5]]]]


def as_tensors(stages, requires_grad=False):
    return [[torch.tensor(a, requires_grad=requires_grad) for a in layers] for layers in stages]


def test_hand_computed_single_stage():
    # Worked by hand: the squared differences of the 6 (l, k) pairs summed over entries. Entry (0,0):
    # E^S = (max .9, min .5, mean .7), E^T = (1, .5, .75); layer 1: (.45-1)^2 + (.25-.5)^2 + (.35-.75)^2,
    # layer 2: (.81-.5)^2 + (.45-.25)^2 + (.63-.375)^2, summing to .726125. Entries (0,1), (1,0), (1,1)
    # give .136625, .026125, .180625: 1.0695 in all. The loss divides it by half the summed squares of
    # both networks' enhanced maps (checked by the loop reference).
    numerator = 0.726125 + 0.136625 + 0.026125 + 0.180625
    assert numerator == pytest.approx(1.0695)
    expected = reference_evd([[S1, S2]], [[T1, T2]])
    loss = attention_distillation_loss(as_tensors([[S1, S2]]), as_tensors([[T1, T2]]))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_hand_computed_one_layer():
    # One layer: every envelope is A itself, so each of the 3 enhanced maps is A squared entrywise.
    # Student identity: Ã^S = [[1, 0], [0, 1]]; teacher uniform: Ã^T = 0.25 everywhere.
    # Per k: ‖Ã^S − Ã^T‖² = 2·0.75² + 2·0.25² = 1.25, ‖Ã^S‖² = 2, ‖Ã^T‖² = 0.25.
    # Ratio = 3·1.25 / (½·3·2.25) = 10/9.
    loss = attention_distillation_loss([[torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])]],
                                       [[torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])]])
    assert loss.item() == pytest.approx(10 / 9, rel=1e-6)


def test_hand_computed_entry_by_hand():
    # one layer: Ã^S = A_S² = (.25, .25, .04, .64), Ã^T = A_T² = (1, 0, 0, 1).
    a_s = [[[[0.5, 0.5], [0.2, 0.8]]]]
    a_t = [[[[1.0, 0.0], [0.0, 1.0]]]]
    numerator = (0.25 - 1) ** 2 + 0.25**2 + 0.04**2 + (0.64 - 1) ** 2  # .7562, the same for all three k
    scale = 0.5 * ((0.0625 + 0.0625 + 0.0016 + 0.4096) + 2.0)  # 1.2681
    loss = attention_distillation_loss([[torch.tensor(a_s)]], [[torch.tensor(a_t)]])
    assert loss.item() == pytest.approx(numerator / scale, rel=1e-6)
    assert loss.item() == pytest.approx(0.59632, rel=1e-4)


def _one_hot_attention(b, h, n, layers=2):
    idx = torch.randint(0, n, (b, h, n))
    return [torch.nn.functional.one_hot(idx, n).float() for _ in range(layers)]


@pytest.mark.parametrize("n", [8, 64, 512])
def test_scale_free_for_one_hot_and_uniform_attention(n):
    # The N²-scaled MSE went from ~1e-9 (near-uniform maps) to ~N (one-hot maps); the ratio does not.
    torch.manual_seed(n)
    uniform = [torch.full((1, 2, n, n), 1.0 / n) for _ in range(2)]
    one_hot = _one_hot_attention(1, 2, n)
    # one-hot teacher, uniform student (and the reverse): the maps barely overlap, so the ratio is near 2
    assert 1.5 < attention_distillation_loss([uniform], [one_hot]).item() <= 2.0
    assert 1.5 < attention_distillation_loss([one_hot], [uniform]).item() <= 2.0
    # near-uniform maps (logits of SD 0.1): about 0.05 whatever N (each enhanced map deviates by ~16 %)
    near = [[torch.softmax(0.1 * torch.randn(1, 2, n, n), -1) for _ in range(2)] for _ in range(2)]
    value = attention_distillation_loss([near[0]], [near[1]]).item()
    assert 0.03 < value < 0.08


def test_bounded_by_two():
    torch.manual_seed(3)
    for _ in range(20):
        s = [torch.softmax(5 * torch.randn(2, 2, 6, 6), -1) for _ in range(3)]
        t = [torch.softmax(5 * torch.randn(2, 2, 6, 6), -1) for _ in range(3)]
        assert 0.0 <= attention_distillation_loss([s], [t]).item() <= 2.0


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
    """Scale-free EVD written with plain tensor ops, so autograd derives its gradient (scale held constant)."""
    ratios = []
    for s_layers, t_layers in zip(student, teacher):
        a_s, a_t = torch.stack(s_layers).double(), torch.stack(t_layers).double().detach()
        sq, own = 0.0, 0.0
        for reduce in (lambda a: a.amax(0), lambda a: a.amin(0), lambda a: a.mean(0)):
            x, y = a_s * reduce(a_s), a_t * reduce(a_t)
            sq = sq + (x - y).square().sum()
            own = own + 0.5 * (x.square().sum() + y.square().sum()).detach()
        ratios.append(sq / own)
    return torch.stack(ratios).mean()


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


def test_chunk_size_fills_a_share_of_free_gpu_memory_and_stays_cache_sized_on_cpu():
    from nnunetv2_mstkd.losses.attention_kd import CPU_CHUNK, chunk_entries

    # GPU: budget min(¼ × 80 GiB, 1 GiB) = 2**30 bytes; (4·4 + 20) maps × 4 bytes = 144 bytes per entry
    assert chunk_entries(4, 10_000_000, 4, "cuda", free_bytes=80 << 30) == (1 << 30) // 144 == 7_456_540
    assert chunk_entries(4, 1_000_000, 4, "cuda", free_bytes=80 << 30) == 1_000_000  # one chunk when it fits
    assert chunk_entries(4, 10_000_000, 4, "cuda", free_bytes=1 << 20) == CPU_CHUNK  # never below the CPU size
    assert chunk_entries(4, 10_000_000, 4, "cpu") == CPU_CHUNK and chunk_entries(4, 1000, 4, "cpu") == 1000


def test_loss_and_gradient_do_not_depend_on_the_chunk_size(monkeypatch):
    from nnunetv2_mstkd.losses import attention_kd

    torch.manual_seed(0)
    student = [[torch.softmax(torch.randn(2, 3, 40, 40), -1).requires_grad_() for _ in range(3)]]
    teacher = [[torch.softmax(torch.randn(2, 3, 40, 40), -1) for _ in range(3)]]
    results = []
    for size in (7, 10_000):
        monkeypatch.setattr(attention_kd, "chunk_entries", lambda *args, size=size, **kwargs: size)
        loss = attention_distillation_loss(student, teacher)
        grads = torch.autograd.grad(loss, student[0])
        results.append((loss.detach(), grads))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-9) for a, b in zip(results[0][1], results[1][1]))
