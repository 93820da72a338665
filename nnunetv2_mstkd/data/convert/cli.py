"""``mstkd_convert``: challenge downloads to nnU-Net raw datasets, and predictions back.

Examples::

    mstkd_convert brats2021 /data/BraTS2021_TrainingData -d 137
    mstkd_convert brats-gli /data/BraTS2024-GLI-Training -d 240 --keep-incomplete -np 8
    mstkd_convert fets /data/FeTS2022 -d 222 -n FeTS2022
    mstkd_convert to-brats predictions/ submission/ --convention 2021

Exit status: 0 on success, 1 if any case or file failed (the others are written),
2 for a problem with the arguments (unknown folder, no matching files, ID in use).
"""
from __future__ import annotations

import argparse
import os
import sys

from nnunetv2_mstkd.data.convert.conversion_report import REPORT_NAME
from nnunetv2_mstkd.data.convert.dataset import convert_dataset
from nnunetv2_mstkd.data.convert.parallel import default_num_processes
from nnunetv2_mstkd.data.convert.schemes import CONVENTIONS, SCHEMES
from nnunetv2_mstkd.data.convert.to_brats import UnconvertedFilesError, convert_predictions_to_brats


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mstkd_convert``."""
    examples = __doc__.split("Examples::")[1].split("Exit status")[0].rstrip()
    parser = argparse.ArgumentParser(
        prog="mstkd_convert", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert BraTS 2021, BraTS 2023/2024 GLI and FeTS 2022/2024 downloads into nnU-Net raw "
                    "datasets, and nnU-Net predictions back to the challenge labels.",
        epilog=f"examples:{examples}\n\nRun 'mstkd_convert <command> -h' for the options of a command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join([*SCHEMES, "to-brats"]) + "}")
    for key, scheme in SCHEMES.items():
        p = sub.add_parser(key, help=f"convert a {scheme.title} download (files like {scheme.example})",
                           description=f"Convert a {scheme.title} download into $nnUNet_raw/DatasetXXX_NAME. "
                                       + scheme.describe_labels())
        p.add_argument("source", metavar="SRC", help="the unpacked download folder (case folders or flat files)")
        p.add_argument("-d", dest="dataset_id", type=int, required=True, help="nnU-Net dataset ID (1-999)")
        p.add_argument("-n", dest="name", default=scheme.default_name,
                       help=f"dataset name (default: {scheme.default_name})")
        p.add_argument("--keep-incomplete", action="store_true",
                       help="write cases lacking a sequence to imagesTs with the channels they have "
                            "(default: leave them out and list them in the report)")
        p.add_argument("-np", dest="num_processes", type=int, default=default_num_processes(),
                       help="parallel workers (default: %(default)s)")
    p = sub.add_parser("to-brats", help="relabel nnU-Net predictions to the challenge labels",
                       description="Relabel predicted label maps (0-3) to the challenge labels: 2021 convention "
                                   "(BraTS 2021, FeTS) 1->2, 2->1, 3->4; gli convention 1->2, 2->1, 3->3.")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder with the predicted .nii.gz files")
    p.add_argument("out_dir", metavar="OUT_DIR", help="where to write the relabelled files")
    p.add_argument("--convention", required=True, choices=sorted(CONVENTIONS), help="challenge label convention")
    p.add_argument("-np", dest="num_processes", type=int, default=default_num_processes(),
                   help="parallel workers (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mstkd_convert``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "to-brats":
            written = convert_predictions_to_brats(args.pred_dir, args.out_dir, args.convention, args.num_processes)
            print(f"Wrote {len(written)} file(s) with {args.convention} labels to {args.out_dir}")
            return 0
        report = convert_dataset(args.command, args.source, args.dataset_id, args.name, args.keep_incomplete,
                                 args.num_processes)
    except UnconvertedFilesError as e:
        print(f"mstkd_convert {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"mstkd_convert {args.command}: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"  report: {os.path.join(report.dataset_dir, REPORT_NAME)}")
    if not report.ok:
        print(f"mstkd_convert {args.command}: {len(report.errors)} case(s) failed; see the errors above.",
              file=sys.stderr)
        return 1
    return 0
