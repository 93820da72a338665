"""Command line of ``mstkd_benchmark`` (the work is :func:`~nnunetv2_mstkd.evaluation.benchmark.run_benchmark`)."""
from __future__ import annotations

import argparse

from nnunetv2_mstkd.evaluation.benchmark import OUTPUT_FILES, run_benchmark
from nnunetv2_mstkd.evaluation.brats_lesionwise import TASKS
from nnunetv2_mstkd.evaluation.summary import markdown_table


def main() -> None:
    """Command-line entry point ``mstkd_benchmark``."""
    parser = argparse.ArgumentParser(
        description="Evaluate trained nnU-Net models on all 15 MRI modality subsets (absent modalities are zeroed "
                    "after normalisation) and write per-case scores, the paper-layout table, Wilcoxon tests, "
                    "timing and a Dice heatmap.")
    parser.add_argument("-d", required=True, help="dataset ID or name")
    parser.add_argument("-c", required=True, help="configuration, e.g. 3d_fullres")
    parser.add_argument("-f", nargs="+", required=True,
                        help="fold(s): each fold's model on its validation cases (or on -i), or 'all'")
    parser.add_argument("-tr", nargs="+", default=[], help="trainer class names, one row each")
    parser.add_argument("--dedicated", default=None, metavar="TEMPLATE",
                        help="also score a zoo of dedicated models as one row 'dedicated per subset', each subset by "
                             "its own model; TEMPLATE names them with a {subset} field, e.g. "
                             "nnUNetTrainerDedicated_{subset} (see trainers/mstkd_dedicated.py)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-i", default=None, help="folder of complete test cases CASE_XXXX<ending> (with -l)")
    parser.add_argument("-l", default=None, help="folder of reference segmentations CASE<ending> (with -i)")
    parser.add_argument("-device", default="cuda", help="cuda (default), cpu or mps")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring (faster)")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding-window step (fraction of the patch)")
    parser.add_argument("--reference", default=None,
                        help="model the Wilcoxon tests compare with the others (default: nnUNetTrainerMSTKD)")
    parser.add_argument("--save_predictions", action="store_true",
                        help="also write every segmentation to OUTPUT/predictions/MODEL/SUBSET/")
    parser.add_argument("--brats-metrics", default=None, choices=TASKS, metavar="TASK",
                        help=f"also BraTS's official lesion-wise Dice and HD95 for this task ({', '.join(TASKS)}), "
                             "computed by the optional package brats-evaluation (pip install "
                             "'nnunetv2-mstkd[brats]')")
    parser.add_argument("--ensemble", action="store_true",
                        help="also score each -tr model's ensemble of the -f folds (as mstkd_predict -f ... "
                             "predicts it) on the -i/-l cases, as a row TRAINER_ensemble")
    parser.add_argument("--disable_progress_bar", action="store_true", help="no progress bar")
    args = parser.parse_args()
    try:
        out = run_benchmark(args.d, args.c, args.f, args.tr, args.o, args.p, args.i, args.l, args.device, args.chk,
                            args.disable_tta, args.step_size, args.reference, args.save_predictions,
                            not args.disable_progress_bar, args.dedicated, args.brats_metrics, args.ensemble)
    except (ValueError, FileNotFoundError, ImportError) as e:
        parser.exit(1, f"mstkd_benchmark: error: {e}\n")
    except RuntimeError as e:
        if "-device" not in str(e):
            raise
        parser.exit(1, f"mstkd_benchmark: error: {e}\n")
    summary = out["summary"]
    print(markdown_table(summary, summary["subsets"], out["models"]))
    for trainer, reason in out["skipped"].items():
        print(f"Skipped {trainer}: {reason}")
    print("Outputs:")
    for key in OUTPUT_FILES:
        print(f"  {out[key]}")
    if out["predictions"]:
        print(f"  {out['predictions']}/")


if __name__ == "__main__":
    main()
