"""``mstkd_benchmark``: evaluate trained models on all 15 modality subsets (METHOD §5).

Each model is ``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG/fold_F``. By default
the cases are the fold's validation cases (``splits_final.json``); ``-i``/``-l`` name
an image and a label folder instead (e.g. ``imagesTs``/``labelsTs``). Several folds
(``-f 0 1 2``) evaluate each fold's model on its own validation cases (or every fold's
model on the ``-i`` cases); the tables then pool all cases, ``results.md`` adds each
model's mean ± SD across folds, and the paired tests run over cases. Every case is
preprocessed once with all its modalities; each subset then zeroes the absent
channels after normalisation, exactly as training with modality dropout does.
Example::

    mstkd_benchmark -d 501 -c 3d_fullres -f 0 -o bench \\
        -tr nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerMSTKD

Outputs in ``-o``: ``per_case.csv``, ``summary.json``, ``results.md`` (paper-layout
table, Wilcoxon tests, timing), ``dice_heatmap.png``, ``wilcoxon.csv``, ``timing.csv``;
with ``--save_predictions`` also ``predictions/MODEL/SUBSET/CASE<file_ending>``.
A model without a checkpoint is reported and skipped. ``--dedicated TEMPLATE`` adds the row
"dedicated per subset": a zoo of 15 dedicated models (``nnUNetTrainerDedicated_{subset}``), each
subset scored by the model trained for it (:mod:`~nnunetv2_mstkd.evaluation.dedicated_zoo`).
"""
from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from functools import partial

import torch
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.file_path_utilities import get_output_folder

from nnunetv2_mstkd.env import ensure_ext_trainer
from nnunetv2_mstkd.evaluation.brats_lesionwise import check_brats_regions, lesion_wise_metrics, load_evaluator
from nnunetv2_mstkd.evaluation.cases import folder_cases, validation_cases
from nnunetv2_mstkd.evaluation.dedicated_zoo import DEDICATED_ROW, load_zoo, zoo_trainers
from nnunetv2_mstkd.evaluation.folds import fold_summary
from nnunetv2_mstkd.evaluation.output_folder import machine_description, write_outputs
from nnunetv2_mstkd.evaluation.subset_loop import BenchmarkModel, evaluate, segmentation_saver
from nnunetv2_mstkd.evaluation.summary import summarize
from nnunetv2_mstkd.inference.predict import resolve_device
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import paper_subsets, subset_label
from nnunetv2_mstkd.regions import evaluation_regions

#: Suffix of the row of a trainer's ensemble of folds (``--ensemble``).
ENSEMBLE_SUFFIX = "_ensemble"

#: Output files, by the key under which :func:`run_benchmark` returns their paths.
OUTPUT_FILES = {"per_case_csv": "per_case.csv", "summary_json": "summary.json", "results_md": "results.md",
                "dice_heatmap": "dice_heatmap.png", "wilcoxon_csv": "wilcoxon.csv", "timing_csv": "timing.csv",
                "acquisition_csv": "acquisition_gain.csv", "acquisition_md": "acquisition_gain.md",
                "acquisition_png": "acquisition_gain.png"}


def missing_checkpoints(dataset: str | int, configuration: str, fold: int | str, trainers: Sequence[str], plans: str,
                        checkpoint_name: str) -> dict[str, str]:
    """Trainer -> why it cannot be evaluated (its expected checkpoint and the command that makes it)."""
    dataset_name = maybe_convert_to_dataset_name(dataset)
    reasons = {}
    for trainer in trainers:
        fold_folder = get_output_folder(dataset_name, trainer, plans, configuration, fold)
        checkpoint = os.path.join(fold_folder, checkpoint_name)
        if not os.path.isfile(checkpoint):
            reasons[trainer] = (f"no checkpoint at {checkpoint}; train it with `nnUNetv2_train {dataset} "
                                f"{configuration} {fold} -tr {trainer} -p {plans}` (or choose another with -chk).")
    return reasons


def _command(dataset, configuration, folds, trainers, output_folder, plans, images, labels, device, checkpoint_name,
             disable_tta, step_size, reference, save_predictions, dedicated, brats_metrics, ensemble) -> str:
    cmd = ["mstkd_benchmark", "-d", str(dataset), "-c", configuration, "-f", *map(str, folds)]
    cmd += ["-tr", *trainers] if trainers else []
    cmd += ["--dedicated", dedicated] if dedicated else []
    cmd += ["-o", str(output_folder), "-p", plans]
    if images is not None:
        cmd += ["-i", str(images), "-l", str(labels)]
    cmd += ["-device", str(device), "-chk", checkpoint_name, "-step_size", f"{step_size:g}"]
    cmd += ["--disable_tta"] * disable_tta + ["--save_predictions"] * save_predictions
    cmd += ["--reference", reference] if reference else []
    cmd += ["--brats-metrics", brats_metrics] if brats_metrics else []
    cmd += ["--ensemble"] * ensemble
    return shlex.join(cmd)


def _check_arguments(trainers, images, labels, step_size, folds, dedicated, ensemble) -> None:
    if not trainers and not dedicated:
        raise ValueError("No model given; name at least one trainer with -tr, or a dedicated zoo with --dedicated.")
    repeated = sorted({t for t in trainers if list(trainers).count(t) > 1})
    if repeated:
        raise ValueError(f"Trainer(s) {repeated} are given more than once; name each model once.")
    if (images is None) != (labels is None):
        raise ValueError("-i IMAGES and -l LABELS go together: pass both, or neither for the fold's validation cases.")
    if not 0 < step_size <= 1:
        raise ValueError(f"-step_size must be in (0, 1], got {step_size}.")
    for fold in folds:
        if str(fold) != "all" and not str(fold).isdigit():
            raise ValueError(f"-f must be fold numbers or 'all', got {fold!r}.")
    if len(set(map(str, folds))) != len(folds):
        raise ValueError(f"-f names a fold more than once: {list(folds)}.")
    if ensemble and (images is None or len(folds) < 2 or not trainers):
        raise ValueError("--ensemble scores the ensemble of the -f folds of each -tr model on the -i/-l cases: it "
                         "needs -tr, two or more folds and -i/-l (each fold's validation cases differ).")


def _folds(fold) -> list[int | str]:
    folds = [fold] if isinstance(fold, (int, str)) else list(fold)
    return ["all" if str(f) == "all" else int(f) if str(f).isdigit() else f for f in folds]


def run_benchmark(dataset: str | int, configuration: str, fold: int | str | Sequence[int | str],
                  trainers: Sequence[str],
                  output_folder: str, plans: str = "nnUNetPlans", images: str | None = None,
                  labels: str | None = None, device: str | torch.device = "cuda",
                  checkpoint_name: str = "checkpoint_final.pth", disable_tta: bool = False, step_size: float = 0.5,
                  reference: str | None = None, save_predictions: bool = False, progress: bool = True,
                  dedicated: str | None = None, brats_metrics: str | None = None, ensemble: bool = False) -> dict:
    """Evaluate each trainer's model of one dataset, configuration and fold on every modality subset.

    Args:
        dataset: Dataset ID or name (``DatasetXXX_Name``).
        configuration: nnU-Net configuration, e.g. ``3d_fullres``.
        fold: The fold whose model (and, without ``images``, whose validation cases) to use, or ``"all"``;
            or several folds, each evaluated with its own model (rows then carry a ``fold``).
        trainers: Trainer class names; each is one row of the tables.
        output_folder: Where the outputs go (created if needed).
        plans: Plans identifier.
        images: Folder of complete cases ``CASE_XXXX<file_ending>``; None for the fold's validation cases.
        labels: Folder of references ``CASE<file_ending>``; required with ``images``.
        device: ``"cuda"`` (default, as nnU-Net), ``"cpu"`` or ``"mps"``; an unavailable device is an error.
        checkpoint_name: Checkpoint file in the fold folder.
        disable_tta: Switch test-time mirroring off.
        step_size: Sliding-window step as a fraction of the patch size.
        reference: Model the paired Wilcoxon tests compare the others with; default: the first full
            ``nnUNetTrainerMSTKD`` model (no tests, with a note, if there is none).
        save_predictions: Also write every segmentation to ``predictions/MODEL/SUBSET/``.
        progress: Show a progress bar.
        dedicated: Name template of a zoo of dedicated models with a ``{subset}`` field (e.g.
            ``nnUNetTrainerDedicated_{subset}``), scored as one row "dedicated per subset"; a zoo
            with a missing model is skipped, naming the commands that train the missing ones.
        brats_metrics: A BraTS task (``gli``, ``mets``, ``MenPre``, ``GoAT``): also score BraTS's official
            lesion-wise Dice and HD95 with the optional ``brats-evaluation`` package (columns
            ``LesionDice``, ``LesionHD95`` and the lesion counts ``LesionTP/FP/FN``).
        ensemble: Also score each trainer's ensemble of the given folds (nnU-Net averages the folds'
            probabilities, as ``mstkd_predict -f 0 1 ...`` does) as a row ``TRAINER_ensemble``; needs
            ``images``/``labels`` and two or more folds.

    Returns:
        The output paths under the keys of :data:`OUTPUT_FILES`, plus ``summary`` (the summary dict),
        ``models`` (evaluated), ``skipped`` (trainer -> reason), ``cases`` (identifiers),
        ``preprocess_calls`` (``(case, model)`` per preprocessing run) and ``predictions`` (folder or None).

    Raises:
        ValueError: For inconsistent arguments or a ``reference`` that is not evaluated.
        FileNotFoundError: If no trainer has a checkpoint, or cases, splits or references are missing.
        RuntimeError: If the device is not available.
        ImportError: For ``brats_metrics`` without the optional package (the message says how to install it).
    """
    trainers = list(trainers)
    folds = _folds(fold)
    _check_arguments(trainers, images, labels, step_size, folds, dedicated, ensemble)
    device = resolve_device(device)
    evaluator = load_evaluator(brats_metrics) if brats_metrics else None
    ensure_ext_trainer()
    dataset_name = maybe_convert_to_dataset_name(dataset)
    skipped: dict[str, str] = {}
    for f in folds:
        for trainer, reason in missing_checkpoints(dataset, configuration, f, trainers, plans, checkpoint_name).items():
            skipped.setdefault(trainer, reason)
    label_of = {trainer: label for label, trainer in (zoo_trainers(dedicated) if dedicated else {}).items()}
    zoo_missing = {label_of[t]: reason for f in folds for t, reason in
                   missing_checkpoints(dataset, configuration, f, list(label_of), plans, checkpoint_name).items()}
    if zoo_missing:
        skipped[DEDICATED_ROW] = (f"no dedicated model for {len(zoo_missing)} subset(s):\n" +
                                  "\n".join(f"    {s}: {reason}" for s, reason in zoo_missing.items()))
    for trainer, reason in skipped.items():
        print(f"WARNING: skipping {trainer}: {reason}", file=sys.stderr)
    available = [t for t in trainers if t not in skipped] + ([DEDICATED_ROW] if dedicated and not zoo_missing else [])
    if not available:
        raise FileNotFoundError("None of the trainers has a checkpoint:\n" +
                                "\n".join(f"  {t}: {r}" for t, r in skipped.items()))
    if reference is not None and reference not in available:
        raise ValueError(f"--reference {reference} is not among the evaluated models {available}.")
    os.makedirs(output_folder, exist_ok=True)
    predictions = os.path.join(output_folder, "predictions") if save_predictions else None
    rows, timing, preprocess_calls, case_ids, sources = [], [], [], [], []

    def load(trainer: str, model_folds: tuple) -> MissingModalityPredictor:
        return MissingModalityPredictor.from_model_folder(
            get_output_folder(dataset_name, trainer, plans, configuration), model_folds, checkpoint_name, device,
            step_size, not disable_tta, allow_tqdm=False, pair_cpu_batches=True)

    for f in folds:
        models = [BenchmarkModel(t, load(t, (f,))) for t in available if t != DEDICATED_ROW]
        if DEDICATED_ROW in available:
            models.append(load_zoo(dedicated, lambda trainer, f=f: load(trainer, (f,))))
        predictor = models[0].predictor
        channel_names, dataset_json = predictor.channel_names, predictor.dataset_json
        if images is None:
            cases = validation_cases(dataset_name, f, len(channel_names))
            source = f"validation cases of fold {f} from splits_final.json"
        else:
            cases = folder_cases(images, labels, channel_names, dataset_json["file_ending"])
            source = f"images {images}, references {labels}"
        if not cases:
            raise FileNotFoundError(f"No cases to evaluate ({source}).")
        subsets = paper_subsets(channel_names)
        saver = segmentation_saver(predictions if len(folds) == 1 else os.path.join(predictions, f"fold_{f}")) \
            if predictions else None
        regions = evaluation_regions(dataset_json)
        lesion_wise = None if evaluator is None else partial(lesion_wise_metrics, evaluator, regions=regions)
        if evaluator is not None:
            check_brats_regions(regions)
        result = evaluate(models, cases, subsets, regions, saver, progress, lesion_wise)
        tag = {"fold": f} if len(folds) > 1 else {}
        rows += [{**r, **tag} for r in result.rows]
        timing += [{**r, **tag} for r in result.timing]
        preprocess_calls += result.preprocess_calls
        case_ids += [c.case_id for c in cases if c.case_id not in case_ids]
        sources.append(source)
    rows_of = list(available)
    if ensemble:
        # nnU-Net's ensemble of the folds, as mstkd_predict -f F1 F2 ... predicts it (probabilities averaged)
        ensembles = [BenchmarkModel(t + ENSEMBLE_SUFFIX, load(t, tuple(folds)))
                     for t in available if t != DEDICATED_ROW]
        saver = segmentation_saver(os.path.join(predictions, "ensemble")) if predictions else None
        result = evaluate(ensembles, cases, subsets, regions, saver, progress, lesion_wise)
        rows += [{**r, "fold": "ensemble"} for r in result.rows]
        timing += [{**r, "fold": "ensemble"} for r in result.timing]
        preprocess_calls += result.preprocess_calls
        rows_of += [m.name for m in ensembles]
    subset_order = [subset_label(s, channel_names) for s in subsets]
    summary = summarize(rows, subset_order)
    if len(folds) > 1:
        summary["across_folds"] = fold_summary(rows, subset_order)
    source = sources[0] if images is not None or len(folds) == 1 else \
        f"validation cases of folds {', '.join(map(str, folds))} from splits_final.json, each fold's model on its own"
    meta = {"dataset": dataset_name, "configuration": configuration, "plans": plans,
            "fold": ", ".join(map(str, folds)), "checkpoint": checkpoint_name, "cases_source": source,
            "n_cases": len(case_ids), "tta": not disable_tta, "step_size": step_size, "device": str(device),
            "machine": machine_description(device),
            "command": _command(dataset, configuration, folds, trainers, output_folder, plans, images, labels, device,
                                checkpoint_name, disable_tta, step_size, reference, save_predictions, dedicated,
                                brats_metrics, ensemble),
            "brats_metrics": brats_metrics,
            "skipped": skipped, "cases": case_ids, "channel_names": list(channel_names),
            "labels": dataset_json.get("labels")}
    paths = {key: os.path.join(output_folder, name) for key, name in OUTPUT_FILES.items()}
    write_outputs(paths, rows, timing, summary, rows_of, reference, meta)
    return {**paths, "summary": summary, "models": rows_of, "skipped": skipped, "cases": meta["cases"],
            "preprocess_calls": preprocess_calls, "predictions": predictions}
