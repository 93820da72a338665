"""Peak memory of the feature-level terms (feature KD and Gram) against the student's own activations.

Builds the MST-KD student and teacher networks of a plans file (nnU-Net's default
plans of a BraTS-grid dataset, e.g. the one ``bench_train_cost.py --full-size``
plans), then on one random batch of the planned patch and batch size:

A. the student's forward with aux outputs and a backward of a stand-in
   segmentation loss (the student's own activations and gradients);
B. the same plus the teacher's no-grad forward and the feature terms
   (``feature_distillation_loss`` over decoder and transformer features, ``gram_loss``)
   in the loss;
C. B without the feature terms (so B − C is what the terms themselves cost).

Memory is the process's resident set, sampled every 2 ms by a thread (CPU). Prints Markdown::

    python scripts/measure_feature_memory.py --plans /tmp/mstkd_full/preprocessed/Dataset972_SynthBraTS/nnUNetPlans.json
"""
from __future__ import annotations

import argparse
import gc
import json
import threading
import time

import torch


class PeakRSS:
    """Highest resident set size (MiB) seen while the block runs, sampled from /proc/self/status."""

    def __enter__(self):
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plans", required=True, help="an nnU-Net plans file (3d_fullres is used)")
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--outputs", type=int, default=3, help="segmentation heads (3 BraTS regions)")
    args = p.parse_args()
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mstkd.losses import feature_distillation_loss, gram_loss
    from nnunetv2_mstkd.network.mstkd_unet import build_mstkd_network
    from nnunetv2_mstkd.training.distillation import style_levels

    with open(args.plans) as f:
        plans = PlansManager(json.load(f))
    cm = plans.get_configuration("3d_fullres")
    student = build_mstkd_network(plans, cm, args.channels, args.outputs, True)
    teacher = build_mstkd_network(plans, cm, args.channels, args.outputs, False).eval()
    teacher.load_state_dict(student.state_dict())
    for q in teacher.parameters():
        q.requires_grad_(False)
    torch.manual_seed(0)
    x = torch.randn(cm.batch_size, args.channels, *cm.patch_size)

    def step(with_teacher: bool, with_terms: bool) -> tuple[float, float]:
        student.zero_grad(set_to_none=True)
        gc.collect()
        base = rss_mib()
        with PeakRSS() as peak:
            start = time.perf_counter()
            if with_teacher:
                with torch.no_grad():
                    _, aux_t = teacher.forward_with_aux(x)
            out, aux_s = student.forward_with_aux(x)
            loss = sum(o.float().square().mean() for o in out)  # stand-in for the segmentation loss
            if with_terms:
                s_feats = list(aux_s["decoder_features"]) + list(aux_s["transformer_outputs"])
                t_feats = list(aux_t["decoder_features"]) + list(aux_t["transformer_outputs"])
                loss = loss + feature_distillation_loss(s_feats, t_feats) + \
                    gram_loss(style_levels(aux_s), style_levels(aux_t))
            loss.backward()
            seconds = time.perf_counter() - start
        del out, aux_s, loss
        if with_teacher:
            del aux_t
        return peak.peak - base, seconds

    step(False, False)  # warm-up: allocator and thread pools
    a = step(False, False)
    c = step(True, False)
    b = step(True, True)
    decoder = [tuple(f.shape) for f in student.forward_with_aux(x[:1, :, :32, :32, :32])[1]["decoder_features"]]
    print(f"Plans {args.plans}, 3d_fullres: patch {'×'.join(map(str, cm.patch_size))}, batch {cm.batch_size}; "
          f"{len(decoder)} decoder stages; torch {torch.__version__}, CPU, float32.\n")
    print("| step | peak RSS above the start (MiB) | seconds |")
    print("|---|---:|---:|")
    for name, (mib, s) in (("A. student forward + backward", a), ("C. A + teacher forward (no grad)", c),
                           ("B. C + feature KD + Gram terms", b)):
        print(f"| {name} | {mib:.0f} | {s:.1f} |")
    print(f"\nThe feature terms cost {b[0] - c[0]:.0f} MiB at their peak, {100 * (b[0] - c[0]) / a[0]:.0f} % of the "
          f"student's own forward and backward ({a[0]:.0f} MiB).")


if __name__ == "__main__":
    main()
