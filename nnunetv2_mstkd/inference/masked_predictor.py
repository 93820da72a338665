"""nnU-Net's predictor for cases that lack modalities: :class:`MaskedPredictor`.

It wraps a stock ``nnUNetPredictor``: cases are read and preprocessed by
:func:`~nnunetv2_mstkd.inference.preprocessing.preprocess_files` (nnU-Net's reader and
preprocessor, then the absent channels zeroed after normalisation, METHOD §2), and
the network, sliding window and export are nnU-Net's.

Example::

    mp = MaskedPredictor("/results/Dataset501_BraTS/Trainer__nnUNetPlans__3d_fullres", folds=(0,))
    case = mp.preprocess(["BraTS_001_0000.nii.gz", None, "BraTS_001_0002.nii.gz", "BraTS_001_0003.nii.gz"])
    seg = mp.segmentation(case, mp.predict_logits(case))
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_mstkd.env import ensure_ext_trainer
from nnunetv2_mstkd.inference.cpu_batching import pair_cpu_batches as pair_batches
from nnunetv2_mstkd.inference.preprocessing import PreprocessedCase, channel_names_of, preprocess_files
from nnunetv2_mstkd.modalities import resolve_channels, zero_absent_channels

__all__ = ["MaskedPredictor", "PreprocessedCase", "check_model_folder", "channel_names_of"]

#: Configuration fields that never change the preprocessed images (network, training, names of stored data).
NETWORK_ONLY_FIELDS = ("architecture", "patch_size", "batch_size", "batch_dice", "median_image_size_in_voxels",
                       "next_stage", "previous_stage", "inherits_from", "data_identifier")


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
        pair_cpu_batches: On CPU, run each sliding-window tile as a batch of two (see
            :mod:`~nnunetv2_mstkd.inference.cpu_batching`): several times faster for small patches,
            equal to nnU-Net's own logits up to float rounding. Off by default, so predictions
            match ``nnUNetv2_predict`` bit for bit.

    Attributes:
        predictor: The wrapped, initialised stock ``nnUNetPredictor``.
        channel_names: The model's channel names in channel order.
    """

    def __init__(self, model_folder, folds=(0,), checkpoint_name="checkpoint_final.pth", device=torch.device("cpu"),
                 tile_step_size=0.5, use_mirroring=True, verbose=False, allow_tqdm=True, pair_cpu_batches=False):
        device = torch.device(device) if isinstance(device, str) else device
        ensure_ext_trainer()  # the checkpoint may name one of our trainers
        check_model_folder(model_folder, folds, checkpoint_name)
        # perform_everything_on_device only applies to CUDA; nnU-Net itself switches it off elsewhere.
        self.predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                         perform_everything_on_device=device.type == "cuda", device=device,
                                         verbose=verbose, verbose_preprocessing=verbose, allow_tqdm=allow_tqdm)
        folds = None if folds is None else tuple(folds)  # None: every fold with a checkpoint, as in nnU-Net
        self.predictor.initialize_from_trained_model_folder(str(model_folder), folds, checkpoint_name)
        if pair_cpu_batches and device.type == "cpu":
            pair_batches(self.predictor.network)
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
