"""``mstkd_predict``: ``nnUNetv2_predict`` for cases that lack some MRI sequences.

Every flag of ``nnUNetv2_predict`` (nnU-Net 2.8.1), with its meaning and default, plus
``-m`` (a model folder instead of ``-d/-p/-tr/-c``), ``--missing`` and
``--allow_nonfinite``. Each case in ``-i`` is found by nnU-Net's naming
(``CASE_XXXX<file_ending>``); a channel whose file is absent, or that is named with
``--missing``, is predicted as absent: zero after nnU-Net's normalisation, as in
training with modality dropout (METHOD §2). Example::

    mstkd_predict -i imagesTs -o pred -d 501 -c 3d_fullres -tr nnUNetTrainerMSTKD -f 0 --missing T1ce
    mstkd_predict -i imagesTs -o pred -m /results/Dataset501/nnUNetTrainerMSTKD__nnUNetPlans__3d_fullres -f 0

The prediction is nnU-Net's own (:class:`~nnunetv2_mstkd.inference.predictor.MissingModalityPredictor`),
so the output folder holds what ``nnUNetv2_predict`` writes (segmentations,
``dataset.json``, ``plans.json``, ``predict_from_raw_data_args.json``), each segmentation
appearing only when complete, plus ``missing_modalities.json`` with the absent channels
of every case. A case whose files cannot be read (mismatched geometry, NaN voxels, no
channel left) is reported and the others go on; the command then exits with status 1
listing the failed cases. An error in the network or the export stops the run, as in
``nnUNetv2_predict``; finished outputs are complete and ``--continue_prediction`` resumes.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Iterable, Sequence

import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunetv2_mstkd.atomic_io import remove_stale_partials, write_json
from nnunetv2_mstkd.inference.case_files import unrecognised_files, unrecognised_message
from nnunetv2_mstkd.inference.case_report import case_report, write_case_outputs, write_index
from nnunetv2_mstkd.inference.expected_accuracy import Expectation, load_expectation
from nnunetv2_mstkd.inference.model_folder import check_model_folder
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import channel_names_of, resolve_channels
from nnunetv2_mstkd.regions import evaluation_regions

MISSING_JSON = "missing_modalities.json"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"mps"`` as a device; refuses (never falls back) when it is not available."""
    kind = device.split(":")[0] if isinstance(device, str) else device.type
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"-device must be cpu, cuda or mps, got {device!r}.")
    device = torch.device(device) if isinstance(device, str) else device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("-device cuda (the default) was requested but CUDA is not available here. "
                           "Pass -device cpu to predict on the CPU.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("-device mps was requested but MPS is not available here. Pass -device cpu.")
    return device


def predict_missing(input_folder: str, output_folder: str, model_folder: str, folds: Sequence[int | str] | None = (0,),
                    missing: Iterable[str | int] = (), checkpoint_name: str = "checkpoint_final.pth",
                    step_size: float = 0.5, disable_tta: bool = False, save_probabilities: bool = False,
                    continue_prediction: bool = False, device: str | torch.device = "cuda",
                    num_processes_preprocessing: int = 3, num_processes_segmentation_export: int = 3,
                    prev_stage_predictions: str | None = None, num_parts: int = 1, part_id: int = 0,
                    not_on_device: bool = False, allow_nonfinite: bool = False,
                    allow_geometry_mismatch: bool = False, allow_unrecognised_files: bool = False,
                    expected: str | None = None,
                    expected_min_dice: float = 50.0, overlays: bool = False, verbose: bool = False,
                    disable_progress_bar: bool = False, log=print) -> dict:
    """Predict every case of ``input_folder``, each with the channels it has.

    Args:
        input_folder: Folder with ``CASE_XXXX<file_ending>`` files.
        output_folder: Where ``CASE<file_ending>`` segmentations go (created if needed).
        model_folder: The trained model (``Trainer__Plans__configuration`` with ``fold_X/``).
        folds: Folds to ensemble (None: every fold with a checkpoint, as nnU-Net does).
        missing: Channels to treat as absent in every case: ``dataset.json`` names (any case),
            aliases (T1Gd/T1c, T2f/Flair, T1n, T2w) or indices. Their files are not read.
        checkpoint_name: Checkpoint in each fold folder.
        step_size: Sliding-window step as a fraction of the patch size.
        disable_tta: Switch test-time mirroring off.
        save_probabilities: Also write ``CASE.npz``/``CASE.pkl`` as nnU-Net does.
        continue_prediction: Skip cases whose outputs already exist.
        device: ``"cuda"``, ``"cpu"`` or ``"mps"``; an unavailable device is an error.
        num_processes_preprocessing: Preprocessing worker processes (0: in this process).
        num_processes_segmentation_export: nnU-Net's export worker processes (at least 1).
        prev_stage_predictions: Folder of the previous stage's segmentations (cascades).
        num_parts: Split the cases into this many parts, as ``nnUNetv2_predict`` does ...
        part_id: ... and predict this one (0 to ``num_parts - 1``).
        not_on_device: Keep the sliding window's result in CPU memory (large cases on a small GPU).
        allow_nonfinite: Predict files with NaN/Inf voxels with them set to 0 instead of refusing them.
        allow_geometry_mismatch: Predict a case whose channels disagree in origin, spacing or direction
            (with a warning) instead of refusing it.
        allow_unrecognised_files: Skip files of ``input_folder`` that look like images but are not channel
            files ``CASE_XXXX<file_ending>`` of the model (with a warning) instead of refusing to start.
        expected: An ``mstkd_benchmark`` output folder (or its ``summary.json``) of the same model: each case
            gets ``CASE_report.json`` with the expected accuracy for its subset and what to acquire.
        expected_min_dice: Regions whose expected Dice (points) is below this are flagged.
        overlays: Write ``CASE_overlay.png`` per case (with more than one case, ``report.md`` links them).
        verbose: nnU-Net's verbose output.
        disable_progress_bar: Hide nnU-Net's progress bars.
        log: Receives one line per message about cases.

    Returns:
        ``{"predicted": [...], "skipped": [...], "failed": {case: message}, "absent": {case: [names]}}``
        for the cases of this part.

    Raises:
        ValueError: Unknown channel in ``missing`` (the message lists the valid ones), a bad part, a file in
            ``input_folder`` that looks like an image but is not a channel file of the model, or a
            benchmark that is unreadable or made for another model, before any work.
        FileNotFoundError: Missing model files or input folder.
        RuntimeError: The device is not available.
    """
    if not 0 <= part_id < num_parts:
        raise ValueError(f"-part_id must be between 0 and -num_parts - 1 = {num_parts - 1}, got {part_id}.")
    device = resolve_device(device)
    folds = None if folds is None else [f if f == "all" else int(f) for f in folds]  # None: every trained fold
    check_model_folder(model_folder, folds, checkpoint_name)
    dataset_json = load_json(os.path.join(model_folder, "dataset.json"))
    channel_names = channel_names_of(dataset_json)
    missing_names = [channel_names[i] for i in resolve_channels(missing, channel_names)]  # fails before any work
    if not os.path.isdir(input_folder):
        raise FileNotFoundError(f"Input folder {input_folder} does not exist.")
    strays = unrecognised_files(input_folder, dataset_json["file_ending"])
    if strays and not allow_unrecognised_files:
        raise ValueError(unrecognised_message(input_folder, strays, dataset_json["file_ending"], channel_names))
    expectation = None if expected is None else matching_expectation(expected, model_folder)
    predictor = MissingModalityPredictor(
        tile_step_size=step_size, use_mirroring=not disable_tta, perform_everything_on_device=not not_on_device,
        device=device, verbose=verbose, verbose_preprocessing=verbose, allow_tqdm=not disable_progress_bar,
        missing=missing_names, allow_nonfinite=allow_nonfinite, allow_geometry_mismatch=allow_geometry_mismatch,
        allow_unrecognised_files=allow_unrecognised_files, log=log)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name)
    os.makedirs(output_folder, exist_ok=True)
    remove_stale_partials(output_folder)
    try:
        predictor.predict_from_files(input_folder, output_folder, save_probabilities=save_probabilities,
                                     overwrite=not continue_prediction,
                                     num_processes_preprocessing=num_processes_preprocessing,
                                     num_processes_segmentation_export=num_processes_segmentation_export,
                                     folder_with_segs_from_prev_stage=prev_stage_predictions,
                                     num_parts=num_parts, part_id=part_id)
    finally:
        remove_stale_partials(output_folder)  # what a failed export of this run left behind
        record = predictor.record
        absent = {c: [channel_names[i] for i in case.absent] for c, case in record.cases.items()}
        name = MISSING_JSON if num_parts == 1 else f"missing_modalities_part{part_id}.json"
        reasons = {c: case.absent_reasons(channel_names) for c, case in record.cases.items()}
        write_json({"channel_names": channel_names, "missing": missing_names, "cases": absent,
                    "reasons": reasons, "failed": record.failed}, os.path.join(output_folder, name))
    predicted = [c for c in record.predicted if c not in record.failed]
    if expectation is not None or overlays:
        report_cases(predictor, [record.cases[c] for c in predicted], output_folder, expectation, expected_min_dice,
                     overlays, log)
    log(f"done: {len(predicted)} predicted, {len(record.skipped)} skipped, {len(record.failed)} failed")
    return {"predicted": sorted(predicted), "skipped": record.skipped, "failed": record.failed, "absent": absent}


def matching_expectation(expected: str, model_folder: str) -> Expectation:
    """The benchmark's results for the model in ``model_folder``; refuses one made for another model."""
    from nnunetv2.utilities.file_path_utilities import parse_dataset_trainer_plans_configuration_from_path

    dataset, trainer, plans, configuration = parse_dataset_trainer_plans_configuration_from_path(
        os.path.abspath(model_folder))
    expectation = load_expectation(expected, trainer)
    expectation.check_model(load_json(os.path.join(model_folder, "dataset.json")), dataset, trainer, plans,
                            configuration)
    return expectation


def report_cases(predictor: MissingModalityPredictor, cases: Sequence, output_folder: str,
                 expectation: Expectation | None, min_dice: float, overlays: bool, log=print) -> list[dict]:
    """Each predicted case's report and/or picture, its flags in the log, and ``report.md`` for a batch."""
    regions = evaluation_regions(predictor.dataset_json)
    ending = predictor.dataset_json["file_ending"]
    reports, files = [], {}
    for case in cases:
        image = sitk.ReadImage(os.path.join(output_folder, case.case_id + ending))
        seg = sitk.GetArrayFromImage(image)
        report = case_report(case.case_id, predictor.channel_names, case.absent, expectation, min_dice,
                             empty=not seg.any())
        files[case.case_id] = write_case_outputs(report, output_folder, case.files, predictor.channel_names, seg,
                                                 regions, image.GetSpacing()[::-1], expectation is not None,
                                                 overlays)
        for line in report["flags"] + ([report["recommendation"]] if "recommendation" in report else []):
            log(f"case {case.case_id}: {line}")
        reports.append(report)
    if len(reports) > 1:
        write_index(reports, files, output_folder)
    return reports


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def build_parser() -> argparse.ArgumentParser:
    """``nnUNetv2_predict``'s arguments (nnU-Net 2.8.1) plus ``-m``, ``--missing`` and ``--allow_nonfinite``."""
    p = argparse.ArgumentParser(
        prog="mstkd_predict",
        description="nnUNetv2_predict for cases lacking MRI sequences: a channel whose CASE_XXXX file is absent, or "
                    "that is named with --missing, is zeroed after normalisation, as in modality-dropout training.")
    p.add_argument("-i", required=True, help="input folder with CASE_XXXX<file_ending> files")
    p.add_argument("-o", required=True, help="output folder (created if needed)")
    p.add_argument("-d", help="dataset name or ID (with -c, -p, -tr; or give -m)")
    p.add_argument("-p", default="nnUNetPlans", help="plans identifier. Default: nnUNetPlans")
    p.add_argument("-tr", default="nnUNetTrainer", help="trainer class used for training. Default: nnUNetTrainer")
    p.add_argument("-c", help="configuration, e.g. 3d_fullres")
    p.add_argument("-m", help="model folder (Trainer__Plans__configuration), instead of -d/-p/-tr/-c")
    p.add_argument("-f", nargs="+", default=(0, 1, 2, 3, 4), help="folds to use. Default: 0 1 2 3 4")
    p.add_argument("-step_size", type=float, default=0.5, help="sliding-window step size. Default: 0.5")
    p.add_argument("--disable_tta", action="store_true", help="disable test-time mirroring")
    p.add_argument("--verbose", action="store_true", help="nnU-Net's verbose output")
    p.add_argument("--save_probabilities", action="store_true", help="also export class probabilities (.npz/.pkl)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases that were already predicted")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint name. Default: checkpoint_final.pth")
    p.add_argument("-npp", type=int, default=_env_int("nnUNet_npp", 3),
                   help="preprocessing processes (0: in the main process). Default: 3 or $nnUNet_npp")
    p.add_argument("-nps", type=int, default=_env_int("nnUNet_nps", 3),
                   help="segmentation export processes (at least 1). Default: 3 or $nnUNet_nps")
    p.add_argument("-prev_stage_predictions", default=None,
                   help="folder with the previous stage's predictions (cascaded models)")
    p.add_argument("-num_parts", type=int, default=1,
                   help="number of separate calls that split the cases between them. Default: 1")
    p.add_argument("-part_id", type=int, default=0, help="which part this call predicts, 0 to num_parts - 1")
    p.add_argument("-device", default="cuda", help="cuda (default), cpu or mps; never falls back silently")
    p.add_argument("--disable_progress_bar", action="store_true", help="hide nnU-Net's progress bars")
    p.add_argument("--not_on_device", action="store_true",
                   help="keep the sliding window's result in CPU memory (large cases on a small GPU)")
    p.add_argument("--expected", metavar="BENCH",
                   help="an mstkd_benchmark output folder (or its summary.json) of the same model: write "
                        "CASE_report.json with the expected accuracy of each case's subset and what to acquire")
    p.add_argument("--expected_min_dice", type=float, default=50.0,
                   help="flag regions whose expected Dice (points) is below this. Default: 50")
    p.add_argument("--overlays", action="store_true",
                   help="write CASE_overlay.png: each sequence through the tumour's centre, segmentation outlined")
    p.add_argument("--allow_nonfinite", action="store_true",
                   help="predict files holding NaN/Inf voxels with those voxels set to 0 (a warning per case) "
                        "instead of refusing the case")
    p.add_argument("--allow_geometry_mismatch", action="store_true",
                   help="predict a case whose channel files disagree in origin, spacing or direction (a warning; "
                        "the first present file's grid is used) instead of refusing the case")
    p.add_argument("--allow_unrecognised_files", action="store_true",
                   help="skip files of -i that look like images but are not CASE_XXXX<file_ending> channel files "
                        "of the model (a warning each) instead of refusing to start")
    p.add_argument("--missing", nargs="+", default=[], metavar="NAME",
                   help="channels to treat as absent in every case: dataset.json names (any case), aliases (T1Gd, "
                        "T1c, T2f, Flair, T1n, T2w) or indices")
    return p


def model_folder_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The model folder from ``-m``, or from ``-d -p -tr -c`` under ``nnUNet_results`` as nnU-Net finds it."""
    if args.m:
        if args.d or args.c:
            parser.error("give either -m or -d/-c, not both")
        return args.m
    if not (args.d and args.c):
        parser.error("give -d and -c (with -p/-tr as needed), or -m MODEL_FOLDER")
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    if not os.environ.get("nnUNet_results"):
        parser.error("nnUNet_results is not set; export it or pass -m MODEL_FOLDER")
    try:
        return get_output_folder(args.d, args.tr, args.p, args.c)
    except RuntimeError as e:  # nnU-Net raises RuntimeError for an unknown dataset
        parser.error(str(e))


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``mstkd_predict``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    model_folder = model_folder_from_args(args, parser)
    if args.device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())  # as nnUNetv2_predict does for -device cpu
    elif args.device == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    try:
        result = predict_missing(args.i, args.o, model_folder, folds=args.f, missing=args.missing,
                                 checkpoint_name=args.chk, step_size=args.step_size, disable_tta=args.disable_tta,
                                 save_probabilities=args.save_probabilities,
                                 continue_prediction=args.continue_prediction, device=args.device,
                                 num_processes_preprocessing=args.npp, num_processes_segmentation_export=args.nps,
                                 prev_stage_predictions=args.prev_stage_predictions, num_parts=args.num_parts,
                                 part_id=args.part_id, not_on_device=args.not_on_device,
                                 allow_nonfinite=args.allow_nonfinite,
                                 allow_geometry_mismatch=args.allow_geometry_mismatch,
                                 allow_unrecognised_files=args.allow_unrecognised_files, expected=args.expected,
                                 expected_min_dice=args.expected_min_dice, overlays=args.overlays, verbose=args.verbose,
                                 disable_progress_bar=args.disable_progress_bar)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        parser.exit(2, f"mstkd_predict: error: {e}\n")
    if result["failed"]:
        lines = "\n".join(f"  {m}" for m in result["failed"].values())
        print(f"mstkd_predict: {len(result['failed'])} case(s) failed: {', '.join(result['failed'])}\n{lines}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
