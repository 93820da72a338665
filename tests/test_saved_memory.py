"""What a student step keeps for its backward pass, against a teacher-trainer step (issue #20, item 1).

Counted by ``scripts/measure_saved_memory.py`` under CPU bfloat16 autocast (the tensors a CUDA float16
step keeps): the distillation terms must not keep float32 copies of the maps or teacher tensors the
student's own forward does not.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "measure_saved_memory.py"
    spec = importlib.util.spec_from_file_location("measure_saved_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_step_saves_at_most_1_25x_the_teacher_trainers_bytes_under_bfloat16():
    result = _script().measure(patch=16)
    assert all(result["terms"][k] > 0 for k in ("att", "feat", "prob", "lskd", "gram", "adv"))
    assert result["plain"] > 10 * 2 ** 20  # the count sees the network's activations, not just parameters
    assert result["ratio"] <= 1.25, result


def test_the_count_takes_each_storage_once_and_leaves_resident_parameters_out():
    import torch

    saved_bytes = _script().SavedBytes
    layer = torch.nn.Linear(256, 256)
    x = torch.randn(64, 256, requires_grad=True)
    with saved_bytes(layer) as counted:
        y = layer(x)
        z = (y * y).sum() + (y * 2).sum()  # y is saved twice, one storage
    z.backward()
    assert counted.total == pytest.approx(x.numel() * 4 + y.numel() * 4)
