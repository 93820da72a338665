"""``mstkd_rank_models``: choose between trainers and configurations by the 15-subset validation.

``nnUNetv2_find_best_configuration`` ranks by ``fold_X/validation/summary.json``, nnU-Net's final
validation on complete scans. For a model that will see incomplete scans, this command ranks the
same models by the mean Dice over the modality subsets that each fold's training wrote to
``fold_X/validation_subsets/summary.json``
(:mod:`~nnunetv2_mstkd.evaluation.fold_validation`), averaged over folds, and shows the complete-input
Dice and the worst subset beside it. Example::

    mstkd_rank_models -d 501 -c 3d_fullres 3d_lowres -tr nnUNetTrainerModalityDropout nnUNetTrainerMSTKD \\
        -f 0 1 2 3 4

Writes ``subset_ranking.csv`` and ``subset_ranking.md`` to ``-o`` (default
``$nnUNet_results/DatasetXXX``). A fold without the summary is named with the ``nnUNetv2_train ... --val``
command that writes it, and its model is left out of the ranking.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.file_path_utilities import get_output_folder

from nnunetv2_mstkd.atomic_io import write_text
from nnunetv2_mstkd.evaluation.fold_validation import COMPLETE_KEY, FOLDER, MEAN_KEY, region_mean
from nnunetv2_mstkd.evaluation.output_folder import write_csv

COLUMNS = ("rank", "trainer", "plans", "configuration", "folds", "subset_mean_dice", "complete_input_dice",
           "worst_subset", "worst_subset_dice")


def subset_summary_of_fold(dataset: str, trainer: str, plans: str, configuration: str, fold: int | str) -> dict | str:
    """The fold's 15-subset summary, or why there is none (with the command that writes it)."""
    path = os.path.join(get_output_folder(dataset, trainer, plans, configuration, fold), FOLDER, "summary.json")
    if os.path.isfile(path):
        return load_json(path)
    return (f"{path} not found; write it with: nnUNetv2_train {dataset} {configuration} {fold} -p {plans} "
            f"-tr {trainer} --val (trainers with modality dropout write it)")


def rank_models(dataset: str | int, configurations: Sequence[str], trainers: Sequence[str],
                plans: Sequence[str] = ("nnUNetPlans",), folds: Sequence[int | str] = (0, 1, 2, 3, 4)
                ) -> tuple[list[dict], dict[str, str]]:
    """Rank every trainer x plans x configuration with all folds' subset summaries by their mean over subsets.

    Returns:
        ``(rows, skipped)``: rows in rank order (see :data:`COLUMNS`); skipped model -> reasons.
    """
    dataset = maybe_convert_to_dataset_name(dataset)
    rows, skipped = [], {}
    for t in trainers:
        for p in plans:
            for c in configurations:
                found = {f: subset_summary_of_fold(dataset, t, p, c, f) for f in folds}
                missing = [v for v in found.values() if isinstance(v, str)]
                if missing:
                    skipped[f"{t}__{p}__{c}"] = "\n    ".join(missing)
                    continue
                summaries = list(found.values())
                subsets = summaries[0]["subsets"]
                per_subset = np.mean([[region_mean(s, s["models"][0], sub) for sub in subsets] for s in summaries], 0)
                worst = int(np.argmin(per_subset))
                rows.append({"trainer": t, "plans": p, "configuration": c, "folds": " ".join(map(str, folds)),
                             "subset_mean_dice": float(np.mean([s[MEAN_KEY] for s in summaries])),
                             "complete_input_dice": float(np.mean([s[COMPLETE_KEY] for s in summaries])),
                             "worst_subset": subsets[worst], "worst_subset_dice": float(per_subset[worst])})
    rows.sort(key=lambda r: -r["subset_mean_dice"])
    for i, r in enumerate(rows, start=1):
        r["rank"] = i
    return rows, skipped


def ranking_markdown(rows: Sequence[dict]) -> str:
    """The ranking as a Markdown table (Dice in %, mean over regions and folds)."""
    lines = ["| rank | trainer | plans | configuration | mean over subsets | complete input | worst subset |",
             "|---:|---|---|---|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['rank']} | {r['trainer']} | {r['plans']} | {r['configuration']} | "
                     f"{100 * r['subset_mean_dice']:.1f} | {100 * r['complete_input_dice']:.1f} | "
                     f"{r['worst_subset']} {100 * r['worst_subset_dice']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from nnunetv2.paths import nnUNet_results

    p = argparse.ArgumentParser(description="Rank models by their mean validation Dice over the modality subsets "
                                            "(fold_X/validation_subsets), beside the complete-input Dice that "
                                            "nnUNetv2_find_best_configuration ranks by.")
    p.add_argument("-d", "--dataset", required=True, help="dataset name or ID")
    p.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"], help="configurations")
    p.add_argument("-tr", "--trainers", nargs="+", required=True, help="trainer class names")
    p.add_argument("-p", "--plans", nargs="+", default=["nnUNetPlans"], help="plans identifiers")
    p.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"], help="folds (default 0-4)")
    p.add_argument("-o", "--output_folder", default=None, help="default $nnUNet_results/DatasetXXX")
    args = p.parse_args(argv)
    folds = [int(f) if f.isdigit() else f for f in args.folds]
    rows, skipped = rank_models(args.dataset, args.configurations, args.trainers, args.plans, folds)
    for model, reason in skipped.items():
        print(f"WARNING: {model} left out:\n    {reason}", file=sys.stderr)
    if not rows:
        print("No model has a 15-subset validation summary for every fold.", file=sys.stderr)
        return 1
    out = args.output_folder or os.path.join(str(nnUNet_results), maybe_convert_to_dataset_name(args.dataset))
    os.makedirs(out, exist_ok=True)
    table = ranking_markdown(rows)
    write_csv(rows, COLUMNS, os.path.join(out, "subset_ranking.csv"))
    write_text(table, os.path.join(out, "subset_ranking.md"))
    print(table + f"\nWritten to {out}/subset_ranking.csv and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
