"""Write a prediction so that it appears complete or not at all.

nnU-Net's :func:`export_prediction_from_logits` writes the segmentation (and, with
``--save_probabilities``, ``.npz``/``.pkl``) straight under the final names, so a
killed run can leave a truncated file that ``--continue_prediction`` then takes
for a finished case. Here nnU-Net's export writes to hidden temporary names in
the output folder (same file system, so :func:`os.replace` is atomic) and each
file is renamed into place once written, the segmentation last: a case counts as
done only when its segmentation exists, and then everything it needs exists too.
"""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import torch
from nnunetv2.inference.export_prediction import export_prediction_from_logits
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

#: Marker in the names of temporary files; a run killed with SIGKILL may leave ``.CASE.partial-*`` files behind.
PARTIAL_MARKER = ".partial-"


def _temporary_truncated_name(output_file_truncated: str) -> str:
    folder, name = os.path.split(output_file_truncated)
    return os.path.join(folder, f".{name}{PARTIAL_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def output_suffixes(file_ending: str, save_probabilities: bool) -> list[str]:
    """Files of one case, in the order they are moved into place (the segmentation last)."""
    return ([".npz", ".pkl"] if save_probabilities else []) + [file_ending]


def is_case_done(output_file_truncated: str, file_ending: str, save_probabilities: bool) -> bool:
    """nnU-Net's rule for ``--continue_prediction``: the segmentation exists (and the ``.npz`` if asked for)."""
    return all(os.path.isfile(output_file_truncated + s) for s in output_suffixes(file_ending, save_probabilities)
               if s != ".pkl")


def export_atomically(logits: np.ndarray | torch.Tensor, properties: dict, configuration_manager: ConfigurationManager,
                      plans_manager: PlansManager, dataset_json: dict, output_file_truncated: str,
                      save_probabilities: bool = False) -> str:
    """nnU-Net's export of one case's logits, moved into place only when complete.

    Args:
        logits: Logits in the preprocessed geometry (from the sliding-window prediction).
        properties: nnU-Net's data properties of the case.
        configuration_manager: The model's configuration.
        plans_manager: The model's plans.
        dataset_json: The model's ``dataset.json``.
        output_file_truncated: Output path without file ending (``folder/CASE``).
        save_probabilities: Also write ``CASE.npz`` and ``CASE.pkl`` as nnU-Net does.

    Returns:
        The segmentation's path.
    """
    ending = dataset_json["file_ending"]
    temporary = _temporary_truncated_name(output_file_truncated)
    suffixes = output_suffixes(ending, save_probabilities)
    try:
        export_prediction_from_logits(logits, properties, configuration_manager, plans_manager, dataset_json,
                                      temporary, save_probabilities)
        for suffix in suffixes:
            os.replace(temporary + suffix, output_file_truncated + suffix)
    finally:
        for suffix in suffixes:
            if os.path.exists(temporary + suffix):
                os.remove(temporary + suffix)
    return output_file_truncated + ending


def save_json_atomically(obj, path: str) -> None:
    """Write JSON to a temporary file beside ``path`` and move it into place."""
    temporary = _temporary_truncated_name(path)
    try:
        with open(temporary, "w") as f:
            json.dump(obj, f, indent=4, sort_keys=False)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
