"""nnU-Net's predictor for cases that lack modalities: :class:`MaskedPredictor`.

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

Example::

    mp = MaskedPredictor("/results/Dataset501_BraTS/Trainer__nnUNetPlans__3d_fullres", folds=(0,))
    case = mp.preprocess(["BraTS_001_0000.nii.gz", None, "BraTS_001_0002.nii.gz", "BraTS_001_0003.nii.gz"])
    seg = mp.segmentation(case, mp.predict_logits(case))
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_mstkd.env import ensure_ext_trainer
from nnunetv2_mstkd.inference.channel_reader import read_present_channels
from nnunetv2_mstkd.modalities import resolve_channels, zero_absent_channels

#: Configuration fields that never change the preprocessed images (network, training, names of stored data).
NETWORK_ONLY_FIELDS = ("architecture", "patch_size", "batch_size", "batch_dice", "median_image_size_in_voxels",
                       "next_stage", "previous_stage", "inherits_from", "data_identifier")


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


def channel_names_of(dataset_json: dict) -> list[str]:
    """Channel names in channel order from a ``dataset.json`` (``channel_names``, or the older ``modality``)."""
    names = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not names:
        raise ValueError("dataset.json has no 'channel_names'; is this an nnU-Net v2 model folder?")
    return [names[k] for k in sorted(names, key=int)]


def preprocess_files(image_files: Sequence[str | None], plans_manager: PlansManager,
                     configuration_manager: ConfigurationManager, dataset_json: dict, verbose: bool = False,
                     case_id: str | None = None) -> PreprocessedCase:
    """Read and preprocess one case as nnU-Net does, then zero its absent channels.

    A module-level function so preprocessing worker processes can run it without the network.

    Args:
        image_files: One path per channel of ``dataset_json``, None for an absent channel.
        plans_manager: The model's plans.
        configuration_manager: The model's configuration.
        dataset_json: The model's ``dataset.json``.
        verbose: Passed to nnU-Net's preprocessor.
        case_id: Used in messages.

    Raises:
        ValueError: Wrong number of files, every channel absent, or channel files with different geometry.
    """
    n = len(channel_names_of(dataset_json))
    if len(image_files) != n:
        raise ValueError(f"case {case_id}: got {len(image_files)} channel files but the model has {n} channels "
                         f"({channel_names_of(dataset_json)}); pass None for an absent channel.")
    data, properties, present = read_present_channels(image_files, plans_manager.image_reader_writer_class(), case_id)
    preprocessor = configuration_manager.preprocessor_class(verbose=verbose)
    data, _, properties = preprocessor.run_case_npy(data, None, properties, plans_manager, configuration_manager,
                                                    dataset_json)
    if not present.all():
        data = zero_absent_channels(data, present)
    tensor = torch.from_numpy(data).to(dtype=torch.float32, memory_format=torch.contiguous_format)
    return PreprocessedCase(tensor, properties, present, case_id)


class MaskedPredictor:
    """nnU-Net's :class:`nnUNetPredictor` for cases with absent modalities.

    Args:
        model_folder: A trained model's folder (``Trainer__Plans__configuration`` with ``fold_X`` subfolders).
        folds: Folds to ensemble.
        checkpoint_name: Checkpoint file in each fold folder.
        device: Where the network runs (a ``torch.device`` or ``"cpu"``/``"cuda"``/``"mps"``).
        tile_step_size: Sliding-window step as a fraction of the patch size.
        use_mirroring: Test-time mirroring, where the checkpoint allows it.
        verbose: nnU-Net's verbose output.
        allow_tqdm: nnU-Net's sliding-window progress bar.

    Attributes:
        predictor: The wrapped, initialised stock ``nnUNetPredictor``.
        channel_names: The model's channel names in channel order.
    """

    def __init__(self, model_folder, folds=(0,), checkpoint_name="checkpoint_final.pth", device=torch.device("cpu"),
                 tile_step_size=0.5, use_mirroring=True, verbose=False, allow_tqdm=True):
        device = torch.device(device) if isinstance(device, str) else device
        ensure_ext_trainer()  # the checkpoint may name one of our trainers
        check_model_folder(model_folder, folds, checkpoint_name)
        # perform_everything_on_device only applies to CUDA; nnU-Net itself switches it off elsewhere.
        self.predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                         perform_everything_on_device=device.type == "cuda", device=device,
                                         verbose=verbose, verbose_preprocessing=verbose, allow_tqdm=allow_tqdm)
        folds = None if folds is None else tuple(folds)  # None: every fold with a checkpoint, as in nnU-Net
        self.predictor.initialize_from_trained_model_folder(str(model_folder), folds, checkpoint_name)
        self.channel_names = channel_names_of(self.predictor.dataset_json)
        self.verbose = verbose

    def preprocess(self, image_files: list[str | None], case_id: str | None = None) -> PreprocessedCase:
        """Read the present files with the model's reader, run nnU-Net's preprocessing, zero the absent channels."""
        p = self.predictor
        return preprocess_files(image_files, p.plans_manager, p.configuration_manager, p.dataset_json,
                                self.verbose, case_id)

    def presence(self, case: PreprocessedCase, present=None) -> np.ndarray:
        """The channels a prediction uses: ``case.present`` AND ``present`` (bools, or channel names/indices)."""
        if present is None:
            return case.present.copy()
        mask = np.asarray(present)
        if mask.dtype != bool:
            mask = np.zeros(len(self.channel_names), dtype=bool)
            mask[resolve_channels(present, self.channel_names)] = True
        if mask.shape != case.present.shape:
            raise ValueError(f"present has shape {mask.shape}; the model has {len(self.channel_names)} channels "
                             f"({', '.join(self.channel_names)}).")
        return case.present & mask

    def predict_logits(self, case: PreprocessedCase, present=None) -> torch.Tensor:
        """nnU-Net's sliding-window logits, in the preprocessed geometry, with the absent channels zeroed.

        Args:
            case: From :meth:`preprocess`.
            present: Optional channels to keep (boolean ``(C,)`` or channel names/indices), AND-ed with
                ``case.present``; the others are zeroed with :func:`zero_absent_channels`.

        Raises:
            ValueError: If no channel is left.
        """
        mask = self.presence(case, present)
        if not mask.any():
            raise ValueError(f"case {case.case_id}: no channel left to predict from (case has "
                             f"{[n for n, m in zip(self.channel_names, case.present) if m]}, asked for {present}).")
        data = case.data if np.array_equal(mask, case.present) else zero_absent_channels(case.data, mask)
        return self.predictor.predict_logits_from_preprocessed_data(data)

    def segmentation(self, case: PreprocessedCase, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """The label map in the case's original image geometry (nnU-Net's resampling, uncropping, transpose)."""
        p = self.predictor
        return convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, p.plans_manager, p.configuration_manager, p.label_manager, case.properties)

    def preprocessing_key(self) -> str:
        """A hash of everything preprocessing depends on; equal keys give identical :class:`PreprocessedCase` s.

        Covers the configuration without its network-only fields (:data:`NETWORK_ONLY_FIELDS`),
        the plans' reader/writer, axis transpose and intensity statistics, and the dataset's
        channels and file ending.
        """
        p = self.predictor
        plans = p.plans_manager.plans
        configuration = {k: v for k, v in p.configuration_manager.configuration.items()
                         if k not in NETWORK_ONLY_FIELDS}
        plans_fields = ("image_reader_writer", "transpose_forward", "foreground_intensity_properties_per_channel")
        payload = {"configuration": configuration, **{k: plans.get(k) for k in plans_fields},
                   "channel_names": self.channel_names, "file_ending": p.dataset_json.get("file_ending")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_model_folder(model_folder, folds, checkpoint_name) -> None:
    """Raise ``FileNotFoundError`` naming what a model folder lacks (dataset.json, plans.json, checkpoints)."""
    model_folder = str(model_folder)
    for name in ("dataset.json", "plans.json"):
        if not os.path.isfile(os.path.join(model_folder, name)):
            raise FileNotFoundError(f"{os.path.join(model_folder, name)} not found; {model_folder} is not a trained "
                                    f"nnU-Net model folder (it should hold dataset.json, plans.json and fold_X/).")
    absent = [os.path.join(model_folder, f"fold_{f}", checkpoint_name) for f in (folds or ())
              if not os.path.isfile(os.path.join(model_folder, f"fold_{f}", checkpoint_name))]
    if absent:
        raise FileNotFoundError(f"Checkpoint(s) not found: {', '.join(absent)}. Train those folds, choose others "
                                f"with -f, or another checkpoint with -chk.")
