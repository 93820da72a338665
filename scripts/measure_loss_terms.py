"""Each MST-KD loss term at the start of training, raw and relative to L_seg + 1.

Builds the untrained student exactly as ``nnUNetv2_train`` would (same class, plans, fold and
teacher lookup), draws real training batches from nnU-Net's data loader, and evaluates every term
without updating anything. Use it to choose the ``lambda_*`` class attributes. Needs the
nnUNet_* variables and a trained teacher; leaves the student's output folder (log, no checkpoint).

    python scripts/measure_loss_terms.py -d 992 -p nnUNetPlansCPU -tr nnUNetTrainerMSTKD_10ep25it -n 20
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from nnunetv2_mstkd.env import ensure_ext_trainer
from nnunetv2_mstkd.training.distillation import distillation_terms
from nnunetv2_mstkd.training.term_logging import seg_headroom


def measure(dataset: str, configuration: str, fold: int, trainer_name: str, plans: str, batches: int,
            epoch: int) -> dict[str, float]:
    """Mean of every raw and weighted term over ``batches`` training batches at ``epoch``."""
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(dataset, configuration, fold, trainer_name, plans, device=torch.device("cpu"))
    trainer.on_train_start()
    trainer.current_epoch = epoch
    values: dict[str, list[float]] = {}
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(batches):
            batch = next(trainer.dataloader_train)
            data, target = batch["data"], batch["target"]
            x_s, _ = trainer.drop_modalities(data)
            z_t, aux_t = trainer.teacher.forward_with_aux(data)
            z_s, aux_s = trainer.network.forward_with_aux(x_s)
            terms = distillation_terms(z_s, aux_s, z_t, aux_t, trainer.label_manager.has_regions,
                                       trainer.distillation_weights(), epoch, trainer.num_epochs, trainer.discriminator)
            terms["seg"] = trainer.loss(z_s, target)
            for k, v in terms.items():
                values.setdefault(k, []).append(float(v))
    # No on_train_end: it would write checkpoint_final.pth and mark the student as trained.
    return {k: float(np.mean(v)) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", required=True)
    parser.add_argument("-c", default="3d_fullres")
    parser.add_argument("-f", type=int, default=0)
    parser.add_argument("-p", default="nnUNetPlans")
    parser.add_argument("-tr", default="nnUNetTrainerMSTKD")
    parser.add_argument("-n", type=int, default=20, help="batches to average (default 20)")
    parser.add_argument("--epoch", type=int, default=0, help="epoch for the consistency ramp (default 0)")
    args = parser.parse_args()
    ensure_ext_trainer()
    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    m = measure(args.d, args.c, args.f, args.tr, args.p, args.n, args.epoch)
    print(f"Untrained {args.tr} against its teacher, dataset {args.d}, {args.c}, fold {args.f}, plans {args.p}, "
          f"epoch {args.epoch} (ramp w = {m['ramp']:.4f}), mean of {args.n} batches\n")
    # nnU-Net's L_seg crosses zero (Dice enters it with a minus sign): compare with its distance from -1
    print("| term | raw value | weighted | relative to L_seg + 1 |")
    print("|---|---|---|---|")
    head = float(seg_headroom(m["seg"]))
    print(f"| L_seg | {m['seg']:.4f} | {m['seg']:.4f} | (L_seg + 1 = {head:.4f}) |")
    for family in ("mstkd", "dmld", "gsme"):
        print(f"| **L_{family.upper()}** | | {m[family]:.4f} | {100 * m[family] / head:.1f} % |")
    for raw in ("att", "feat", "prob", "lskd", "gram", "adv"):
        if raw in m:
            print(f"| {raw} | {m[raw]:.3g} | | |")


if __name__ == "__main__":
    main()
