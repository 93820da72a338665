"""Read and preprocess one case that may lack channels, as training-time modality dropout sees it.

An absent modality is an all-zero channel *after* nnU-Net's normalisation
(METHOD §2), exactly what training-time modality dropout feeds the network. So a
case is preprocessed by nnU-Net's own preprocessor (the class the plans name)
with raw zeros in the absent channels; those zeros are normalised into something
that need not be zero (ZScore maps them to zero, CT normalisation does not), and
then overwritten with zeros by :func:`~nnunetv2_mstkd.modalities.zero_absent_channels`.

Cropping: nnU-Net crops every case to the nonzero region of *all* its channels
(and z-scores inside that region when ``use_mask_for_norm`` is set). An absent
channel is zero, so the union of the *present* channels' nonzero masks decides
the crop and the normalisation mask. When the channels share one brain mask (as
in skull-stripped, co-registered BraTS data) that is the crop of the complete
case, and a case with a file removed gives the same tensor as the complete case
with that channel zeroed after preprocessing. Where the present channels cover
less than the complete case did, the crop is smaller; the segmentation is still
returned in the full image geometry.

This module does not import the network side of nnU-Net, so preprocessing worker
processes start quickly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_mstkd.inference.channel_reader import ReadPolicy, read_present_channels
from nnunetv2_mstkd.modalities import channel_names_of, zero_absent_channels


@dataclass
class PreprocessedCase:
    """One case after nnU-Net's preprocessing, with its absent channels zeroed.

    Attributes:
        data: ``(C, *spatial)`` float32 tensor in the model's preprocessed geometry.
        properties: nnU-Net's data properties (spacing, crop box, shapes) for exporting.
        present: Boolean ``(C,)``: True for each channel that was read.
        case_id: Identifier used in messages, if known.
    """

    data: torch.Tensor
    properties: dict
    present: np.ndarray
    case_id: str | None = None


def preprocess_files(image_files: Sequence[str | None], plans_manager: PlansManager,
                     configuration_manager: ConfigurationManager, dataset_json: dict, verbose: bool = False,
                     case_id: str | None = None, seg_from_prev_stage: str | None = None,
                     policy: ReadPolicy = ReadPolicy()) -> PreprocessedCase:
    """Read and preprocess one case as nnU-Net does, then zero its absent channels.

    Args:
        image_files: One path per channel of ``dataset_json``, None for an absent channel.
        plans_manager: The model's plans.
        configuration_manager: The model's configuration.
        dataset_json: The model's ``dataset.json``.
        verbose: Passed to nnU-Net's preprocessor.
        case_id: Used in messages.
        seg_from_prev_stage: A cascade's previous-stage segmentation of this case: preprocessed
            with the images and appended as one-hot channels, as nnU-Net's data iterator does.
        policy: What the files may get away with (see :func:`read_present_channels`).

    Raises:
        ValueError: Wrong number of files, every channel absent, NaN/Inf voxels, or channel files
            with different geometry.
    """
    n = len(channel_names_of(dataset_json))
    if len(image_files) != n:
        raise ValueError(f"case {case_id}: got {len(image_files)} channel files but the model has {n} channels "
                         f"({channel_names_of(dataset_json)}); pass None for an absent channel.")
    reader = plans_manager.image_reader_writer_class()
    data, properties, present = read_present_channels(image_files, reader, case_id, policy,
                                                      channel_names_of(dataset_json))
    seg = reader.read_seg(seg_from_prev_stage)[0] if seg_from_prev_stage is not None else None
    preprocessor = configuration_manager.preprocessor_class(verbose=verbose)
    data, seg, properties = preprocessor.run_case_npy(data, seg, properties, plans_manager, configuration_manager,
                                                      dataset_json)
    if not present.all():
        data = zero_absent_channels(data, present)
    if seg_from_prev_stage is not None:  # (without one, nnU-Net's preprocessor returns its nonzero mask as seg)
        foreground = plans_manager.get_label_manager(dataset_json).foreground_labels
        data = np.vstack((data, convert_labelmap_to_one_hot(seg[0], foreground, data.dtype)))
    tensor = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    return PreprocessedCase(tensor, properties, present, case_id)


_WORKER_STATE: tuple = ()


def init_worker(plans_manager: PlansManager, configuration_manager: ConfigurationManager, dataset_json: dict,
                verbose: bool, policy: ReadPolicy = ReadPolicy()) -> None:
    """Initialiser of a preprocessing worker process: keep the model's plans for :func:`preprocess_in_worker`."""
    global _WORKER_STATE
    _WORKER_STATE = (plans_manager, configuration_manager, dataset_json, verbose, policy)


def preprocess_in_worker(files: list[str | None], case_id: str,
                         seg_from_prev_stage: str | None = None) -> tuple[np.ndarray, dict, np.ndarray]:
    """:func:`preprocess_files` in a worker process; returns ``(data, properties, present)``."""
    plans_manager, configuration_manager, dataset_json, verbose, policy = _WORKER_STATE
    case = preprocess_files(files, plans_manager, configuration_manager, dataset_json, verbose, case_id,
                            seg_from_prev_stage, policy)
    # numpy, not a tensor, crosses the process boundary: no shared-memory file descriptors per case.
    return case.data.numpy(), case.properties, case.present
