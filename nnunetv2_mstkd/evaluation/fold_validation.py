"""A fold's final validation under every modality subset: ``fold_X/validation_subsets/``.

Run by :class:`~nnunetv2_mstkd.training.subset_validation.SubsetValidationMixin` right after nnU-Net's
own final validation (end of training, ``nnUNetv2_train ... --val`` and ``--val_best``), with the
trainer's network in memory. Each validation case is read from nnU-Net's preprocessed data (as
nnU-Net's validation reads it), predicted once per subset with the absent channels zeroed (the
benchmark's loop, :func:`~nnunetv2_mstkd.evaluation.subset_loop.evaluate`), and scored against
``gt_segmentations`` with the benchmark's Dice and HD95 per region. Written atomically:

* ``per_case.csv``: one row per case, subset and region;
* ``summary.json``: the benchmark's summary (per subset and region, and "Avg", the mean over subsets),
  plus ``subset_mean_dice`` and ``complete_input_dice`` (mean over regions);
* ``summary.md``: the paper-layout table.

``mstkd_rank_models`` ranks trainers and configurations by ``subset_mean_dice``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from nnunetv2_mstkd.atomic_io import atomic_path, write_text
from nnunetv2_mstkd.evaluation.cases import EvalCase
from nnunetv2_mstkd.evaluation.subset_loop import BenchmarkModel, evaluate
from nnunetv2_mstkd.evaluation.summary import markdown_table, summarize, write_per_case_csv, write_summary_json
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.inference.preprocessing import PreprocessedCase
from nnunetv2_mstkd.modalities import channel_names_of
from nnunetv2_mstkd.regions import evaluation_regions

#: Folder in ``fold_X`` and the summary keys :func:`validate_fold_on_subsets` writes.
FOLDER, MEAN_KEY, COMPLETE_KEY = "validation_subsets", "subset_mean_dice", "complete_input_dice"


def region_mean(summary: dict, model: str, subset: str, metric: str = "Dice") -> float:
    """Mean over regions of one model's ``subset`` (or ``"Avg"``) cell of a summary."""
    cells = summary["results"][model][subset]
    return float(np.mean([cells[r][metric]["mean"] for r in summary["regions"]]))


def validate_fold_on_subsets(trainer) -> dict | None:
    """Predict the trainer's validation cases under each of its subsets and write ``validation_subsets/``.

    Args:
        trainer: An initialised nnU-Net trainer with :class:`SubsetValidationMixin`.

    Returns:
        The summary dict, or None for a cascade stage (not run: the previous stage's channels would
        have to be predicted per subset too).
    """
    if trainer.is_cascaded:
        trainer.print_to_log_file("15-subset validation is not run for a cascade stage; its input includes the "
                                  "previous stage's segmentation, which would have to be predicted per subset too.")
        return None
    folder = os.path.join(trainer.output_folder, FOLDER)
    os.makedirs(folder, exist_ok=True)
    _, val_keys = trainer.do_split()
    dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, val_keys)
    gt_folder = os.path.join(trainer.preprocessed_dataset_folder_base, "gt_segmentations")
    ending = trainer.dataset_json["file_ending"]
    cases = [EvalCase(k, [], os.path.join(gt_folder, k + ending)) for k in dataset.identifiers]
    channels = channel_names_of(trainer.dataset_json)  # the images: a cascade stage is not run (above)

    def load(case: EvalCase) -> PreprocessedCase:
        data, _, _, properties = dataset.load_case(case.case_id)
        tensor = torch.from_numpy(np.ascontiguousarray(data[:], dtype=np.float32))
        return PreprocessedCase(tensor, properties, np.ones(len(channels), dtype=bool), case.case_id)

    # nnU-Net's final validation settings (its perform_actual_validation), the trainer's network in memory
    predictor = MissingModalityPredictor(0.5, True, True, True, trainer.device, False, False, False,
                                         log=trainer.print_to_log_file)
    network = trainer.network.module if trainer.is_ddp else trainer.network  # rank 0 alone: no DDP sync
    predictor.manual_initialization(network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__,
                                    trainer.inference_allowed_mirroring_axes)
    predictor.channel_names = channels
    # predict_logits_from_preprocessed_data loads each fold's parameters; here the one network's own, a no-op
    bare = getattr(network, "_orig_mod", network)
    predictor.list_of_parameters = [bare.state_dict()]
    name = trainer.__class__.__name__
    subsets, labels = trainer.trained_subsets(), trainer.subset_labels()
    trainer.print_to_log_file(f"15-subset validation: {len(cases)} cases x {len(subsets)} subsets -> {folder}")
    done: set[str] = set()

    def report(case, model, label, seg, pre) -> None:
        done.add(label)
        if len(done) == len(subsets):
            trainer.print_to_log_file(f"  {case.case_id}: {len(subsets)} subsets predicted")
            done.clear()

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    try:
        with torch.no_grad():
            result = evaluate([BenchmarkModel(name, predictor)], cases, subsets,
                              evaluation_regions(trainer.dataset_json), report, progress=False, preprocessed=load)
    finally:
        trainer.set_deep_supervision_enabled(True)
    summary = summarize(result.rows, labels)
    complete = trainer.complete_subset_index()
    summary[MEAN_KEY] = region_mean(summary, name, "Avg")
    summary[COMPLETE_KEY] = float("nan") if complete is None else region_mean(summary, name, labels[complete])
    with atomic_path(os.path.join(folder, "per_case.csv")) as tmp:
        write_per_case_csv(result.rows, tmp)
    with atomic_path(os.path.join(folder, "summary.json")) as tmp:
        write_summary_json(summary, tmp)
    write_text(f"# {name}, fold {trainer.fold}: validation cases under every modality subset\n\n"
               f"{len(cases)} cases; Dice in %, HD95 in mm; Avg = mean over the {len(subsets)} subsets.\n\n"
               + markdown_table(summary, labels) + "\n", os.path.join(folder, "summary.md"))
    trainer.print_to_log_file(f"Mean Dice over {len(subsets)} subsets: {summary[MEAN_KEY]:.4f} "
                              f"(complete input: {summary[COMPLETE_KEY]:.4f})")
    return summary
