"""Which cases the benchmark evaluates: their channel files, reference labels and tumour regions.

Two sources:

- :func:`validation_cases`: the validation cases of one fold, as nnU-Net's trainer
  uses them: case identifiers from ``splits_final.json`` in the preprocessed dataset
  folder, images from the raw dataset (``imagesTr`` or the ``dataset`` entry of
  ``dataset.json``), references from ``gt_segmentations`` (nnU-Net's copy of
  ``labelsTr``), else from the raw labels.
- :func:`folder_cases`: every case of an image folder (``CASE_XXXX<file_ending>``)
  with its reference ``CASE<file_ending>`` in a label folder, e.g. ``imagesTs``/``labelsTs``.

The benchmark removes modalities itself, so every case must have all its channels.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

from nnunetv2_mstkd.inference.case_files import find_cases, unrecognised_files, unrecognised_message


@dataclass
class EvalCase:
    """One case to evaluate.

    Attributes:
        case_id: nnU-Net's case identifier.
        images: One file per channel, in channel order.
        label: The reference segmentation.
    """

    case_id: str
    images: list[str]
    label: str


def _check_exists(case: EvalCase) -> EvalCase:
    absent = [f for f in [*case.images, case.label] if not os.path.isfile(f)]
    if absent:
        raise FileNotFoundError(f"case {case.case_id}: file(s) not found: {', '.join(absent)}. The benchmark needs "
                                f"every channel and the reference of each case.")
    return case


def validation_cases(dataset_name: str, fold: int | str, num_channels: int) -> list[EvalCase]:
    """The validation cases of ``fold`` from ``$nnUNet_preprocessed/<dataset>/splits_final.json``.

    Args:
        dataset_name: ``DatasetXXX_Name``.
        fold: Fold index into ``splits_final.json``.
        num_channels: Channels each case must have (the model's).

    Raises:
        ValueError: For fold ``all`` (it has no validation cases), a fold the splits lack, or a case
            with the wrong number of channel files.
        FileNotFoundError: If the splits, the raw dataset or a case's files are missing.
    """
    if str(fold) == "all":
        raise ValueError("Fold 'all' trains on every case, so it has no validation cases; pass a test set with "
                         "-i IMAGES -l LABELS.")
    preprocessed = os.path.join(nnUNet_preprocessed.require(), dataset_name)
    splits_file = os.path.join(preprocessed, "splits_final.json")
    if not os.path.isfile(splits_file):
        raise FileNotFoundError(f"{splits_file} not found. nnUNetv2_train writes it when it trains the first fold; "
                                f"train a model first or pass a test set with -i IMAGES -l LABELS.")
    splits = load_json(splits_file)
    if not 0 <= int(fold) < len(splits):
        raise ValueError(f"{splits_file} has folds 0-{len(splits) - 1}; fold {fold} does not exist.")
    raw = os.path.join(nnUNet_raw.require(), dataset_name)
    if not os.path.isfile(os.path.join(raw, "dataset.json")):
        raise FileNotFoundError(f"{os.path.join(raw, 'dataset.json')} not found; the benchmark reads the validation "
                                f"images from the raw dataset. Set nnUNet_raw or pass -i IMAGES -l LABELS.")
    dataset_json = load_json(os.path.join(raw, "dataset.json"))
    files = get_filenames_of_train_images_and_targets(raw, dataset_json)
    cases = []
    for case_id in splits[int(fold)]["val"]:
        if case_id not in files:
            raise FileNotFoundError(f"case {case_id} of fold {fold} in {splits_file} is not in the raw dataset {raw}.")
        images = list(files[case_id]["images"])
        if len(images) != num_channels:
            raise ValueError(f"case {case_id}: {len(images)} channel files in {raw}, the model has {num_channels} "
                             f"channels.")
        gt = os.path.join(preprocessed, "gt_segmentations", case_id + dataset_json["file_ending"])
        label = gt if os.path.isfile(gt) else files[case_id]["label"]
        cases.append(_check_exists(EvalCase(case_id, images, label)))
    return cases


def folder_cases(images_folder: str, labels_folder: str, channel_names: Sequence[str],
                 file_ending: str) -> list[EvalCase]:
    """Every case of ``images_folder`` with its reference in ``labels_folder``, sorted by identifier.

    Raises:
        FileNotFoundError: If a folder is missing or empty, a case lacks a channel file, or its
            reference is not in ``labels_folder`` (the message names the file).
        ValueError: If files carry a channel index the model does not have, or a file looks like an image
            but is not a channel file ``CASE_XXXX<file_ending>`` (a misnamed channel would make its case
            incomplete unnoticed).
    """
    if not os.path.isdir(labels_folder):
        raise FileNotFoundError(f"Label folder {labels_folder} does not exist.")
    if os.path.isdir(images_folder):
        strays = unrecognised_files(images_folder, file_ending)
        if strays:
            raise ValueError(unrecognised_message(images_folder, strays, file_ending, channel_names, None))
    cases = []
    for found in find_cases(images_folder, channel_names, file_ending):
        if found.unexpected:
            raise ValueError(found.problem(channel_names))
        if found.not_found:
            absent = ", ".join(os.path.basename(found.expected[i]) for i in found.not_found)
            raise FileNotFoundError(f"case {found.case_id}: {absent} not found in {images_folder}. The benchmark "
                                    f"needs complete cases (it removes modalities itself); complete or remove it.")
        label = os.path.join(labels_folder, found.case_id + file_ending)
        cases.append(_check_exists(EvalCase(found.case_id, list(found.expected), label)))
    return cases


def read_reference(case: EvalCase, reader_writer: BaseReaderWriter) -> tuple[np.ndarray, list[float]]:
    """The reference label map ``(*spatial)`` and its spacing in mm per array axis."""
    seg, properties = reader_writer.read_seg(case.label)
    return seg[0], [float(s) for s in properties["spacing"]]
