#!/usr/bin/env python3
"""Bytes autograd saves for backward: one MST-KD student step against one teacher-trainer step, on the CPU.

GPU memory at nnU-Net's plans is mostly what autograd keeps for the backward pass. Under CPU bfloat16
autocast the same tensors are kept as under CUDA float16, so counting their bytes (each storage once;
the modules' own parameters and buffers not counted, since they are resident anyway) shows without a
GPU whether the distillation terms keep float32 copies or teacher tensors the student's forward does not.
The step is composed as the trainer composes it: the teacher's aux forward without gradient, the
student's aux forward on a batch with T1ce absent, nnU-Net's deep-supervised Dice + BCE loss, and
every distillation term with the default weights.

    python scripts/measure_saved_memory.py --patch 32          # 4 stages of 32-256 features, batch 2
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


class SavedBytes:
    """Context manager: bytes of the distinct storages autograd saves for backward inside it.

    Storages of ``resident`` modules' parameters and buffers are not counted: they take memory whether or
    not a step saves them (a half-precision copy of a weight made by autocast is new, and counted).
    """

    def __init__(self, *resident: torch.nn.Module):
        self.storages: dict[int, int] = {}
        self.described: dict[int, str] = {}
        self.resident = {p.untyped_storage().data_ptr() for m in resident for p in (*m.parameters(), *m.buffers())}

    def _pack(self, t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.resident and ptr not in self.storages:
            self.storages[ptr] = t.untyped_storage().nbytes()
            self.described[ptr] = f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def measure(patch: int = 16, features=(32, 64, 128, 256), batch: int = 2, dtype=torch.bfloat16) -> dict:
    """Saved bytes of a teacher-trainer step and of a student step at a ``patch``³ plan; also the terms."""
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from test_network import build, make_plans

    from nnunetv2_mstkd.network.discriminator import StyleDiscriminator
    from nnunetv2_mstkd.training.distillation import DistillationWeights, distillation_terms

    plans = make_plans(patch=[patch] * 3, features=features)
    teacher, student = build(plans).eval().requires_grad_(False), build(plans)
    student.load_state_dict(teacher.state_dict())
    discriminator = StyleDiscriminator(features[-1], 3, 32)
    loss = DeepSupervisionWrapper(
        DC_and_BCE_loss({}, {"batch_dice": False, "do_bg": True, "smooth": 1e-5, "ddp": False},
                        use_ignore_label=False, dice_class=MemoryEfficientSoftDiceLoss),
        [1 / 2 ** i for i in range(len(features) - 1)])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, *[patch] * 3, generator=g)
    target = [(torch.rand(batch, 3, *[patch // 2 ** i] * 3, generator=g) > 0.7).float()
              for i in range(len(features) - 1)]
    x_student = x.clone()
    x_student[:, 1] = 0  # T1ce absent, so every distillation term has something to match
    start = time.time()
    with torch.autocast("cpu", dtype=dtype):
        with SavedBytes(student) as plain:
            seg = loss(student(x), target)
        seg.backward()
        student.zero_grad(set_to_none=True)
        with torch.no_grad():
            z_t, aux_t = teacher.forward_with_aux(x)
        with SavedBytes(student, teacher, discriminator) as distilled:
            z_s, aux_s = student.forward_with_aux(x_student)
            total = loss(z_s, target)
            network_part = set(distilled.storages)
            terms = distillation_terms(z_s, aux_s, z_t, aux_t, True, DistillationWeights(), 5, 10, discriminator)
            total = total + terms["mstkd"] + terms["dmld"] + terms["gsme"]
        total.backward()
    extra = sorted(((n, distilled.described[p]) for p, n in distilled.storages.items() if p not in network_part),
                   reverse=True)
    return {"plain": plain.total, "student": distilled.total, "ratio": distilled.total / plain.total,
            "terms_only": extra, "terms": {k: float(v.detach()) for k, v in terms.items()},
            "seconds": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, default=16, help="patch edge (default 16)")
    args = parser.parse_args()
    r = measure(args.patch)
    print(f"patch {args.patch}^3, 4 stages 32-256, batch 2, CPU bfloat16 autocast; {platform.processor() or 'cpu'}, "
          f"torch {torch.__version__}")
    print(f"saved for backward: teacher trainer {r['plain'] / 2**20:.1f} MiB, student {r['student'] / 2**20:.1f} MiB, "
          f"ratio {r['ratio']:.2f} ({r['seconds']:.0f} s)")
    print(f"kept by the distillation terms alone: {sum(n for n, _ in r['terms_only']) / 2**20:.1f} MiB; largest:")
    for n, what in r["terms_only"][:10]:
        print(f"  {n / 2**20:6.2f} MiB  {what}")


if __name__ == "__main__":
    main()
