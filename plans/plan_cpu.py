"""``mstkd_apply_plans``: plan a fingerprinted dataset for the CPU with ``nnUNetPlannerCPU``.

Writes the plans identifier ``nnUNetPlansCPU`` (``-p`` for ``nnUNetv2_train``) next to
nnU-Net's own plans. Its 3d_fullres and 2d configurations share nnU-Net's
preprocessed data; when that data is missing it is produced with nnU-Net's own
preprocessing.

Example::

    nnUNetv2_plan_and_preprocess -d 501 -c 3d_fullres -np 1 -npfp 1
    mstkd_apply_plans -d 501                     # writes nnUNetPlansCPU.json
    nnUNetv2_train 501 3d_fullres 0 -p nnUNetPlansCPU -tr nnUNetTrainer_5ep25it -device cpu

``-pl nnUNetPlannerResEncCPU`` plans nnU-Net's residual-encoder U-Net at the same CPU sizes
(``nnUNetResEncUNetPlansCPU``), the CPU counterpart of ``-pl nnUNetPlannerResEncM``.
"""
from __future__ import annotations

import argparse
import os

#: Planners ``-pl`` accepts.
PLANNERS = ("nnUNetPlannerCPU", "nnUNetPlannerResEncCPU")


def plan_cpu(dataset: str | int, num_processes: int = 1, planner_name: str = "nnUNetPlannerCPU") -> str:
    """Plan ``dataset`` with a CPU planner and make sure its preprocessed data exists.

    Args:
        dataset: Dataset ID or name (``501`` or ``Dataset501_SynthBraTS``).
        num_processes: Processes for nnU-Net's preprocessing, if it has to run.
        planner_name: One of :data:`PLANNERS`.

    Returns:
        Path of the written plans file.

    Raises:
        RuntimeError: If nnUNet_preprocessed is unset, the dataset does not exist or has not been
            fingerprinted yet (the message names the command to run).
        ValueError: If an existing CPU plans file keeps a configuration that inherits from one the CPU
            plans do not contain.
    """
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import (
        convert_dataset_name_to_id,
        maybe_convert_to_dataset_name,
    )

    from nnunetv2_mstkd.plans import cpu_planner

    if planner_name not in PLANNERS:
        raise ValueError(f"Unknown planner {planner_name!r}; choose one of {', '.join(PLANNERS)}.")
    if not nnUNet_preprocessed:
        raise RuntimeError("nnUNet_preprocessed is not set. Export nnUNet_raw, nnUNet_preprocessed and "
                           "nnUNet_results as for any nnU-Net command.")
    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise RuntimeError(f"Dataset {dataset} not found: {e}. Create it first (e.g. mstkd_synth -d {dataset}).") from e
    folder = os.path.join(str(nnUNet_preprocessed), name)
    if not os.path.isfile(os.path.join(folder, "dataset_fingerprint.json")):
        raise RuntimeError(f"{name} has not been fingerprinted yet ({folder}/dataset_fingerprint.json is missing). "
                           f"Run first:\n  nnUNetv2_plan_and_preprocess -d {dataset} -c 3d_fullres -np 1 -npfp 1")
    planner = getattr(cpu_planner, planner_name)(name)
    plans = planner.plan_experiment()
    fullres = plans["configurations"].get("3d_fullres")
    if fullres is not None and not os.path.isdir(os.path.join(folder, fullres["data_identifier"])):
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset

        preprocess_dataset(convert_dataset_name_to_id(name), planner.plans_identifier, ["3d_fullres"],
                           [num_processes])
    return os.path.join(folder, planner.plans_identifier + ".json")


def main() -> None:
    """``mstkd_apply_plans``: CPU-sized plans (nnUNetPlannerCPU) for a fingerprinted dataset."""
    parser = argparse.ArgumentParser(description="Plan a dataset fingerprinted by nnUNetv2_plan_and_preprocess "
                                                 "for the CPU (nnUNetPlannerCPU: 32³ patch, batch 2, 16-32-64 "
                                                 "features on isotropic data); prints the new plans identifier.")
    parser.add_argument("-d", required=True, help="dataset ID or name")
    parser.add_argument("-np", type=int, default=1, help="processes for preprocessing if needed (default 1)")
    parser.add_argument("-pl", default="nnUNetPlannerCPU", choices=PLANNERS,
                        help="nnUNetPlannerCPU (plain U-Net, default) or nnUNetPlannerResEncCPU (nnU-Net's "
                             "residual-encoder U-Net), both CPU-sized")
    args = parser.parse_args()
    try:
        path = plan_cpu(args.d, args.np, args.pl)
    except (RuntimeError, ValueError) as e:
        parser.exit(1, f"mstkd_apply_plans: error: {e}\n")
    print(f"Wrote {path}\nUse it with: -p {os.path.basename(path)[:-5]}")
