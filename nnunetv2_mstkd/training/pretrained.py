"""``mstkd_pretrained``: make a checkpoint that ``nnUNetv2_train -pretrained_weights`` loads into an MST-KD network.

nnU-Net's ``load_pretrained_weights`` requires every key of the network (but ``.seg_layers.``) in the
file with the same shape. An MST-KD network is nnU-Net's planned network plus ``transformers.*``, so a
checkpoint of a plain nnU-Net (``nnUNetTrainer``, ``nnUNetTrainerModalityDropout``) lacks those keys
and is refused. This command writes a checkpoint with every key of the target trainer's network:

* each key the source has (same shape) comes from the source;
* each key it lacks (the transformer blocks) comes from ``--fill_from`` (e.g. the teacher's checkpoint)
  when that has it, else from the freshly built network. A fresh block's output projection is zero,
  so it returns its input exactly: the network computes what the plain source network computes.

A teacher checkpoint (``nnUNetTrainerMSTKDTeacher``, ``nnUNetTrainerMSTKD_noKD``) already has every key and
needs no conversion. How pretrained weights combine with the teacher initialisation: nnU-Net first
initialises the trainer (the student loads the teacher's weights), then copies every key of the file
except ``.seg_layers.``; so the file wins wherever it has a key, the segmentation layers stay the
teacher's, and the teacher stays the teacher of the distillation. The student's log says how many
weight tensors then differ from the teacher's. Example::

    mstkd_pretrained -i plain/fold_0/checkpoint_final.pth -o pretrained_mstkd.pth -d 137 -tr nnUNetTrainerMSTKD
    nnUNetv2_train 137 3d_fullres 0 -tr nnUNetTrainerMSTKD -pretrained_weights pretrained_mstkd.pth
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import torch

from nnunetv2_mstkd.atomic_io import atomic_path

#: Keys nnU-Net never transfers from pretrained weights (the 1x1 segmentation layers).
SKIPPED = (".seg_layers.",)


def merge_pretrained(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                     fill: Mapping[str, torch.Tensor] | None = None) -> tuple[dict, dict]:
    """A state dict with exactly ``target``'s keys: from ``source``, else ``fill``, else ``target``.

    Returns:
        ``(state_dict, report)``; the report lists the keys taken ``from_source``, ``from_fill`` and
        ``from_target`` and the ``unused`` source keys.

    Raises:
        ValueError: If a key outside the segmentation layers has another shape in ``source`` (the
            checkpoint is of another architecture or plans); the message names the key and both shapes.
    """
    fill = fill or {}
    merged, report = {}, {"from_source": [], "from_fill": [], "from_target": [], "unused": []}
    for key, value in target.items():
        if key in source and source[key].shape != value.shape:
            if not any(s in key for s in SKIPPED):
                raise ValueError(f"{key}: shape {tuple(source[key].shape)} in the pretrained checkpoint, "
                                 f"{tuple(value.shape)} in the network; the checkpoint must come from the same "
                                 f"plans and configuration.")
        elif key in source:
            merged[key] = source[key]
            report["from_source"].append(key)
            continue
        if key in fill and fill[key].shape == value.shape:
            merged[key], where = fill[key], "from_fill"
        else:
            merged[key], where = value, "from_target"
        report[where].append(key)
    report["unused"] = [k for k in source if k not in target]
    return merged, report


def target_network(dataset: str, configuration: str, plans: str, trainer: str) -> torch.nn.Module:
    """The trainer's freshly built network for a dataset's plans (as ``nnUNetv2_train`` would build it)."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_mstkd.env import ensure_ext_trainer

    ensure_ext_trainer()
    folder = os.path.join(str(nnUNet_preprocessed), maybe_convert_to_dataset_name(dataset))
    plans_file = os.path.join(folder, plans + ".json")
    if not os.path.isfile(plans_file):
        raise FileNotFoundError(f"{plans_file} not found; plan and preprocess the dataset first (nnU-Net's "
                                f"nnUNetv2_plan_and_preprocess).")
    dataset_json = load_json(os.path.join(folder, "dataset.json"))
    plans_manager = PlansManager(plans_file)
    configuration_manager = plans_manager.get_configuration(configuration)
    trainer_class = recursive_find_trainer_class_by_name(trainer)
    channels = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    heads = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    return trainer_class.build_network_architecture(plans_manager, configuration_manager, channels, heads, True)


def convert(source_file: str, output_file: str, network: torch.nn.Module, fill_file: str | None = None) -> dict:
    """Write ``output_file`` with every key of ``network`` (see :func:`merge_pretrained`); returns the report."""
    source = torch.load(source_file, map_location="cpu", weights_only=False)
    fill = torch.load(fill_file, map_location="cpu", weights_only=False)["network_weights"] if fill_file else None
    merged, report = merge_pretrained(source["network_weights"], network.state_dict(), fill)
    with atomic_path(output_file) as tmp:
        torch.save({"network_weights": merged, "trainer_name": source.get("trainer_name"),
                    "mstkd_pretrained": {"source": os.path.abspath(source_file), "fill_from": fill_file,
                                         **{k: len(v) for k, v in report.items()}}}, tmp)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a checkpoint that nnUNetv2_train -pretrained_weights loads into "
                                            "an MST-KD trainer's network: keys from a (plain) nnU-Net checkpoint, "
                                            "the missing transformer keys from --fill_from or a fresh network "
                                            "(identity blocks).")
    p.add_argument("-i", "--input", required=True, help="the pretrained checkpoint (e.g. .../checkpoint_final.pth)")
    p.add_argument("-o", "--output", required=True, help="the checkpoint to write")
    p.add_argument("-d", "--dataset", required=True, help="dataset name or ID whose plans the student trains with")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("-p", "--plans", default="nnUNetPlans")
    p.add_argument("-tr", "--trainer", default="nnUNetTrainerMSTKD", help="the trainer that will load it")
    p.add_argument("--fill_from", default=None, help="checkpoint whose weights fill the keys the input lacks "
                                                     "(e.g. the teacher's checkpoint_final.pth)")
    args = p.parse_args(argv)
    try:
        network = target_network(args.dataset, args.configuration, args.plans, args.trainer)
        report = convert(args.input, args.output, network, args.fill_from)
    except (FileNotFoundError, ValueError) as e:
        print(f"ERROR: {args.input}: {e}", file=sys.stderr)
        return 1
    fresh = "fresh (identity transformer blocks)" if not args.fill_from else "fresh"
    print(f"{args.output}: {len(report['from_source'])} tensors from {args.input}, {len(report['from_fill'])} from "
          f"{args.fill_from}, {len(report['from_target'])} {fresh}; {len(report['unused'])} input keys unused.\n"
          f"Train with: nnUNetv2_train {args.dataset} {args.configuration} FOLD -p {args.plans} -tr {args.trainer} "
          f"-pretrained_weights {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
