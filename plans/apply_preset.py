"""Apply a plans preset (``plans/*.json``) to a dataset that nnU-Net has already planned.

The preset rewrites patch size, batch size and network depth/width of the listed
configurations and saves the result under a new plans identifier (``-p`` for
``nnUNetv2_train``). Spacing and normalisation are untouched, so the new plans
share nnU-Net's preprocessed data (same ``data_identifier``); when that data is
missing it is produced with nnU-Net's own preprocessing.

Example::

    nnUNetv2_plan_and_preprocess -d 501 -c 3d_fullres -np 1 -npfp 1
    mstkd_apply_plans -d 501                     # writes nnUNetPlansCPU.json
    nnUNetv2_train 501 3d_fullres 0 -p nnUNetPlansCPU -tr nnUNetTrainer_5ep25it -device cpu
"""
from __future__ import annotations

import argparse
import copy
import json
import os

from nnunetv2_mstkd.atomic_io import write_json

PRESET_DIR = os.path.dirname(os.path.abspath(__file__))


def available_presets() -> list[str]:
    """Names of the presets shipped in ``plans/`` (file names without ``.json``)."""
    return sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".json"))


def load_preset(name_or_path: str) -> dict:
    """Load a shipped preset by name (``cpu``) or any preset file by path."""
    path = name_or_path if name_or_path.endswith(".json") else os.path.join(PRESET_DIR, name_or_path + ".json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Plans preset {name_or_path!r} not found. Shipped presets: {available_presets()}.")
    with open(path) as f:
        return json.load(f)


def apply_preset_to_plans(plans: dict, preset: dict) -> dict:
    """Return a copy of ``plans`` with the preset's configurations applied.

    For each configuration named in the preset (and present in the plans): the patch
    size and batch size are replaced, and the U-Net gets ``len(features_per_stage)``
    stages of those widths, stride 1 then 2 along every axis, keeping the planned
    kernel sizes and convolutions per stage of its first stages.

    Raises:
        ValueError: If a patch size is not divisible by the total downsampling, or the preset names a
            configuration that ``inherits_from`` another one.
    """
    out = copy.deepcopy(plans)
    out["plans_name"] = preset["plans_identifier"]
    for name, cfg in preset["configurations"].items():
        if name not in out["configurations"]:
            continue
        conf = out["configurations"][name]
        if "inherits_from" in conf:
            raise ValueError(f"Configuration {name} of plans {plans.get('plans_name')} inherits from "
                             f"{conf['inherits_from']!r}; a preset changes only configurations with their own "
                             f"architecture. Name {conf['inherits_from']!r} in the preset instead, or remove {name}.")
        feats = list(cfg["features_per_stage"])
        n = len(feats)
        patch = list(cfg["patch_size"])
        if any(p % 2 ** (n - 1) for p in patch):
            raise ValueError(f"Preset patch size {patch} of {name} is not divisible by 2**{n - 1} "
                             f"for {n} stages; change the preset.")
        kw = conf["architecture"]["arch_kwargs"]
        ndim = len(patch)
        kw["n_stages"] = n
        kw["features_per_stage"] = feats
        kw["kernel_sizes"] = [list(k) for k in kw["kernel_sizes"][:n]]
        kw["strides"] = [[1] * ndim] + [[2] * ndim for _ in range(n - 1)]
        for key, length in (("n_conv_per_stage", n), ("n_blocks_per_stage", n), ("n_conv_per_stage_decoder", n - 1)):
            if key in kw:
                kw[key] = list(kw[key][:length])
        conf["patch_size"] = patch
        conf["batch_size"] = int(cfg["batch_size"])
    return out


def apply_preset(dataset: str | int, preset: str = "cpu", source_plans: str = "nnUNetPlans",
                 num_processes: int = 1) -> str:
    """Apply ``preset`` to a planned dataset and make sure its preprocessed data exists.

    Args:
        dataset: Dataset ID or name (``501`` or ``Dataset501_SynthBraTS``).
        preset: Shipped preset name or path to a preset JSON.
        source_plans: Plans identifier the preset starts from.
        num_processes: Processes for nnU-Net's preprocessing, if it has to run.

    Returns:
        Path of the written plans file.

    Raises:
        RuntimeError: If nnUNet_preprocessed is unset or the dataset has not been
            fingerprinted/planned yet (the message names the nnU-Net command to run).
    """
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import (
        convert_dataset_name_to_id,
        maybe_convert_to_dataset_name,
    )

    if not nnUNet_preprocessed:
        raise RuntimeError("nnUNet_preprocessed is not set. Export nnUNet_raw, nnUNet_preprocessed and "
                           "nnUNet_results as for any nnU-Net command.")
    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise RuntimeError(f"Dataset {dataset} not found: {e}. Create it first (e.g. mstkd_synth -d {dataset}).") from e
    folder = os.path.join(str(nnUNet_preprocessed), name)
    src = os.path.join(folder, source_plans + ".json")
    if not os.path.isfile(src):
        if not os.path.isfile(os.path.join(folder, "dataset_fingerprint.json")):
            raise RuntimeError(f"{name} has not been fingerprinted or planned yet ({src} is missing). Run first:\n"
                               f"  nnUNetv2_plan_and_preprocess -d {dataset} -c 3d_fullres -np 1 -npfp 1")
        raise RuntimeError(f"{src} is missing. Plan the dataset first:\n  nnUNetv2_plan_experiment -d {dataset}")
    with open(src) as f:
        plans = json.load(f)
    preset_dict = load_preset(preset)
    new_plans = apply_preset_to_plans(plans, preset_dict)
    identifier = preset_dict["plans_identifier"]
    dst = os.path.join(folder, identifier + ".json")
    write_json(new_plans, dst)

    missing = [c for c in preset_dict["configurations"] if c in new_plans["configurations"]
               and not os.path.isdir(os.path.join(folder, new_plans["configurations"][c].get("data_identifier", "")))]
    if missing:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset

        preprocess_dataset(convert_dataset_name_to_id(name), identifier, missing, [num_processes] * len(missing))
    return dst


def main() -> None:
    """``mstkd_apply_plans``: apply a CPU-scale plans preset to a planned dataset."""
    parser = argparse.ArgumentParser(description="Apply a plans preset (default: cpu) to a dataset planned by "
                                                 "nnUNetv2_plan_and_preprocess; prints the new plans identifier.")
    parser.add_argument("-d", required=True, help="dataset ID or name")
    parser.add_argument("--preset", default="cpu", help=f"preset name {available_presets()} or path (default cpu)")
    parser.add_argument("-p", default="nnUNetPlans", help="source plans identifier (default nnUNetPlans)")
    parser.add_argument("-np", type=int, default=1, help="processes for preprocessing if needed (default 1)")
    args = parser.parse_args()
    try:
        path = apply_preset(args.d, args.preset, args.p, args.np)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        parser.exit(1, f"mstkd_apply_plans: error: {e}\n")
    print(f"Wrote {path}\nUse it with: -p {os.path.basename(path)[:-5]}")
