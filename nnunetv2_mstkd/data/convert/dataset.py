"""Converting a whole challenge download into an nnU-Net raw dataset."""
from __future__ import annotations

import os
import re

from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.paths import nnUNet_raw
from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

from nnunetv2_mstkd.atomic_io import remove_stale_partials
from nnunetv2_mstkd.data.convert.case_io import convert_case
from nnunetv2_mstkd.data.convert.conversion_report import REPORT_NAME, ConversionReport
from nnunetv2_mstkd.data.convert.download_cases import find_download_cases
from nnunetv2_mstkd.data.convert.parallel import default_num_processes, map_with_progress
from nnunetv2_mstkd.data.convert.schemes import (
    CHANNEL_NAMES,
    NNUNET_LABELS,
    REGIONS_CLASS_ORDER,
    Scheme,
    get_scheme,
)

FILE_ENDING = ".nii.gz"
SUBFOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")


def dataset_folder(dataset_id: int, name: str, raw_root: str | None = None) -> str:
    """``<raw_root>/DatasetXXX_NAME``, refusing an ID that another dataset already uses.

    Args:
        dataset_id: nnU-Net dataset ID, 1 to 999.
        name: Dataset name (letters, digits, ``_`` and ``-``).
        raw_root: Folder of raw datasets; default ``$nnUNet_raw``.

    Raises:
        ValueError: For a bad ID or name, or an ID taken by a differently named dataset
            in ``raw_root``, ``$nnUNet_preprocessed`` or ``$nnUNet_results``.
        RuntimeError: If ``raw_root`` is not given and ``nnUNet_raw`` is not set.
    """
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"Dataset ID must be between 1 and 999, got {dataset_id}.")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"Dataset name {name!r} may only contain letters, digits, '_' and '-'.")
    root = raw_root if raw_root is not None else nnUNet_raw.require()
    folder_name = f"Dataset{int(dataset_id):03d}_{name}"
    prefix = folder_name[:len("Dataset000_")]
    taken = set(find_candidate_datasets(int(dataset_id)))
    if os.path.isdir(root):
        taken |= {d for d in os.listdir(root) if d.startswith(prefix) and os.path.isdir(os.path.join(root, d))}
    others = sorted(taken - {folder_name})
    if others:
        raise ValueError(f"Dataset ID {dataset_id} is already used by {', '.join(others)}. Pick another ID with -d, "
                         f"or reuse that name with -n to add cases to it.")
    return os.path.join(root, folder_name)


def write_dataset_json(dataset_dir: str, scheme: Scheme) -> int:
    """(Re)write ``dataset.json`` from the cases present in ``imagesTr``; return their number."""
    images_tr = os.path.join(dataset_dir, "imagesTr")
    num_training = len(get_identifiers_from_splitted_dataset_folder(images_tr, FILE_ENDING))
    generate_dataset_json(
        dataset_dir,
        channel_names=dict(enumerate(CHANNEL_NAMES)),
        labels=dict(NNUNET_LABELS),
        num_training_cases=num_training,
        file_ending=FILE_ENDING,
        regions_class_order=REGIONS_CLASS_ORDER,
        dataset_name=os.path.basename(dataset_dir),
        reference=scheme.reference,
        description=scheme.describe_labels(),
        license=f"See the {scheme.title} data terms at {scheme.reference}",
        converted_by="mstkd_convert (nnunetv2-mstkd)",
    )
    return num_training


def convert_dataset(scheme: str | Scheme, source: str, dataset_id: int, dataset_name: str | None = None,
                    keep_incomplete: bool = False, num_processes: int | None = None,
                    raw_root: str | None = None) -> ConversionReport:
    """Convert a challenge download into ``$nnUNet_raw/DatasetXXX_NAME`` and report on every case.

    Complete labelled cases go to ``imagesTr``/``labelsTr``, unlabelled ones to
    ``imagesTs``, incomplete ones are left out (or, with ``keep_incomplete``, go to
    ``imagesTs`` with only the channels they have). Cases written completely by an
    earlier run are skipped, so an interrupted run can simply be repeated, and a second
    download (e.g. the validation data) can be added to the same dataset. A failing case
    is reported and skipped. ``dataset.json`` and ``conversion_report.json`` are written
    at the end.

    Args:
        scheme: ``"brats2021"``, ``"brats-gli"``, ``"fets"`` or a :class:`Scheme`.
        source: The unpacked download folder (case folders or flat files, any depth).
        dataset_id: nnU-Net dataset ID.
        dataset_name: Dataset name; default the scheme's (``BraTS2021``, ``BraTSGLI``, ``FeTS``).
        keep_incomplete: Write cases lacking a sequence to ``imagesTs``.
        num_processes: Parallel workers; default ``min(4, CPUs)``.
        raw_root: Folder of raw datasets; default ``$nnUNet_raw``.

    Returns:
        The :class:`ConversionReport`; check ``report.ok``.

    Raises:
        ValueError: If no file under ``source`` follows the scheme's naming, or for a bad ID/name.
        FileNotFoundError: If ``source`` is not a folder.
    """
    scheme = get_scheme(scheme)
    cases, unrecognised = find_download_cases(scheme, source)
    if not cases:
        raise ValueError(f"No {scheme.title} files under {source!r}: expected names like {scheme.example} "
                         f"({len(unrecognised)} other NIfTI files found). Is this the right dataset scheme?")
    dataset_dir = dataset_folder(dataset_id, dataset_name or scheme.default_name, raw_root)
    for sub in SUBFOLDERS[:2]:
        os.makedirs(os.path.join(dataset_dir, sub), exist_ok=True)
    for sub in SUBFOLDERS:
        remove_stale_partials(os.path.join(dataset_dir, sub))
    jobs = [(case, scheme.key, dataset_dir, keep_incomplete) for case in cases]
    results = map_with_progress(convert_case, jobs, num_processes or default_num_processes(), desc=scheme.key)
    report = ConversionReport(scheme.key, os.path.abspath(source), dataset_dir, keep_incomplete, results,
                              unrecognised, write_dataset_json(dataset_dir, scheme), dict(scheme.background_labels))
    report.save(os.path.join(dataset_dir, REPORT_NAME))
    return report
