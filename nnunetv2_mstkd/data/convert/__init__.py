"""Real datasets in and out: BraTS 2021, BraTS 2023/2024 GLI and FeTS 2022/2024.

:func:`convert_dataset` turns a challenge download into an nnU-Net raw dataset with
channels T1, T1ce, T2, FLAIR and nnU-Net's BraTS region labels;
:func:`convert_predictions_to_brats` maps predictions back to the challenge's labels.
The command line is ``mstkd_convert`` (:mod:`nnunetv2_mstkd.data.convert.cli`).
"""
from nnunetv2_mstkd.data.convert.case_io import CaseError, CaseResult, convert_case
from nnunetv2_mstkd.data.convert.conversion_report import REPORT_NAME, ConversionReport
from nnunetv2_mstkd.data.convert.dataset import convert_dataset, dataset_folder, write_dataset_json
from nnunetv2_mstkd.data.convert.download_cases import DownloadCase, find_download_cases
from nnunetv2_mstkd.data.convert.schemes import CONVENTIONS, SCHEMES, Scheme, get_scheme
from nnunetv2_mstkd.data.convert.to_brats import (
    UnconvertedFilesError,
    convert_prediction_file,
    convert_predictions_to_brats,
    to_brats_labels,
)

__all__ = [
    "CONVENTIONS", "REPORT_NAME", "SCHEMES", "CaseError", "DownloadCase", "CaseResult", "ConversionReport", "Scheme",
    "UnconvertedFilesError", "convert_case", "convert_dataset", "convert_prediction_file",
    "convert_predictions_to_brats", "dataset_folder", "find_download_cases", "get_scheme", "to_brats_labels",
    "write_dataset_json",
]
