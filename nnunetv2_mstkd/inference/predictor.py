"""nnU-Net's predictor for cases that lack some MRI sequences: :class:`MissingModalityPredictor`.

A subclass of ``nnUNetPredictor`` that overrides only what absent channels need:

* ``_manage_input_and_output_lists``: a folder's cases are found by
  :func:`~nnunetv2_mstkd.inference.case_files.find_cases` (a case may lack channel
  files); nnU-Net then applies ``-num_parts``/``-part_id``, ``--continue_prediction``
  and ``-prev_stage_predictions`` as always.
* ``_internal_get_data_iterator_from_lists_of_filenames``: each case is read with the
  channels it has and preprocessed by nnU-Net's preprocessor, the absent channels zeroed
  after normalisation (METHOD §2), and a case that cannot be read is reported while the
  others go on (:mod:`~nnunetv2_mstkd.inference.data_iterator`).
* the plans' image writer writes atomically (:mod:`~nnunetv2_mstkd.inference.atomic_export`).

Everything else (the prediction loop, sliding window, ensembling of folds, export worker
pools, ``predict_from_raw_data_args.json``) is nnU-Net's. With every channel present the
output equals ``nnUNetv2_predict``'s bit for bit.

Example::

    p = MissingModalityPredictor(device=torch.device("cpu"), missing=["T1ce"])
    p.initialize_from_trained_model_folder("/results/Dataset501_BraTS/Trainer__nnUNetPlans__3d_fullres", (0,))
    p.predict_from_files("imagesTs", "predictions")

The benchmark uses the same class one step lower: :meth:`preprocess` once per case, then
:meth:`predict_logits` with each subset of channels present.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_mstkd.atomic_io import partial_path
from nnunetv2_mstkd.env import ensure_ext_trainer
from nnunetv2_mstkd.inference.atomic_export import AtomicExportPlansManager
from nnunetv2_mstkd.inference.case_files import (
    CaseFiles,
    case_from_files,
    find_cases,
    unrecognised_files,
    unrecognised_message,
)
from nnunetv2_mstkd.inference.channel_reader import ReadPolicy
from nnunetv2_mstkd.inference.data_iterator import Job, absent_channel_iterator
from nnunetv2_mstkd.inference.model_folder import check_model_folder
from nnunetv2_mstkd.inference.preprocessing import PreprocessedCase, preprocess_files
from nnunetv2_mstkd.modalities import channel_names_of, resolve_channels, zero_absent_channels
from nnunetv2_mstkd.network.cpu_batching import pair_cpu_batches

#: Configuration fields that never change the preprocessed images (network, training, names of stored data).
NETWORK_ONLY_FIELDS = ("architecture", "patch_size", "batch_size", "batch_dice", "median_image_size_in_voxels",
                       "next_stage", "previous_stage", "inherits_from", "data_identifier")


@dataclass
class PredictionRecord:
    """What one ``predict_from_files`` call did with each case of its part."""

    cases: dict[str, CaseFiles] = field(default_factory=dict)
    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class MissingModalityPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` for cases with absent modalities (see the module docstring).

    The first eight arguments are ``nnUNetPredictor``'s. Keyword-only:

    Args:
        missing: Channels to treat as absent in every case (``dataset.json`` names, aliases such
            as T1Gd/Flair, or indices); their files are not read.
        allow_nonfinite: Predict files holding NaN/Inf voxels with those voxels 0 (a warning per
            case) instead of refusing the case.
        allow_geometry_mismatch: Predict a case whose channels disagree in origin, spacing or direction
            (a warning) instead of refusing it.
        allow_unrecognised_files: Skip files of the input folder that look like images but are not
            ``CASE_XXXX<file_ending>`` channels of the model (a warning each) instead of refusing to start.
        pair_cpu_batches: On CPU, run each sliding-window tile as a batch of two
            (:mod:`~nnunetv2_mstkd.network.cpu_batching`): faster for small patches, equal to
            nnU-Net's logits up to float rounding. Off by default (bit-for-bit equality).
        log: Receives one line per message about cases.

    Attributes:
        channel_names: The model's channel names in channel order (after initialisation).
        record: A :class:`PredictionRecord` of the last ``predict_from_files`` call.
    """

    def __init__(self, tile_step_size: float = 0.5, use_gaussian: bool = True, use_mirroring: bool = True,
                 perform_everything_on_device: bool = True, device: torch.device = torch.device("cuda"),
                 verbose: bool = False, verbose_preprocessing: bool = False, allow_tqdm: bool = True, *,
                 missing: Sequence[str | int] = (), allow_nonfinite: bool = False,
                 allow_geometry_mismatch: bool = False, allow_unrecognised_files: bool = False,
                 pair_cpu_batches: bool = False, log=print):
        device = torch.device(device) if isinstance(device, str) else device
        super().__init__(tile_step_size, use_gaussian, use_mirroring, perform_everything_on_device, device, verbose,
                         verbose_preprocessing, allow_tqdm)
        self.missing, self.pair_cpu_batches, self.log = missing, pair_cpu_batches, log
        self.read_policy = ReadPolicy(allow_nonfinite, allow_geometry_mismatch)
        self.allow_unrecognised_files = allow_unrecognised_files
        self.channel_names: list[str] = []
        self.missing_indices: list[int] = []
        self.record = PredictionRecord()

    @classmethod
    def from_model_folder(cls, model_folder: str, folds=(0,), checkpoint_name: str = "checkpoint_final.pth",
                          device: str | torch.device = "cpu", tile_step_size: float = 0.5, use_mirroring: bool = True,
                          verbose: bool = False, allow_tqdm: bool = True, **kwargs) -> MissingModalityPredictor:
        """An initialised predictor of a trained model (nnU-Net keeps the result on the device only for CUDA).

        ``kwargs`` are the keyword-only arguments of the class (``missing``, ``pair_cpu_batches`` ...).
        """
        device = torch.device(device) if isinstance(device, str) else device
        predictor = cls(tile_step_size, True, use_mirroring, device.type == "cuda", device, verbose, verbose,
                        allow_tqdm, **kwargs)
        predictor.initialize_from_trained_model_folder(model_folder, None if folds is None else tuple(folds),
                                                       checkpoint_name)
        return predictor

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds,
                                             checkpoint_name: str = "checkpoint_final.pth") -> None:
        """nnU-Net's initialisation, after checking the folder and before anything is predicted.

        Raises:
            FileNotFoundError: The folder lacks ``dataset.json``, ``plans.json`` or a checkpoint.
            ValueError: An unknown channel in ``missing`` (the message lists the valid ones).
        """
        ensure_ext_trainer()  # the checkpoint may name one of our trainers
        check_model_folder(model_training_output_dir, use_folds, checkpoint_name)
        super().initialize_from_trained_model_folder(str(model_training_output_dir), use_folds, checkpoint_name)
        self.plans_manager = AtomicExportPlansManager(self.plans_manager.plans)
        self.channel_names = channel_names_of(self.dataset_json)
        self.missing_indices = resolve_channels(self.missing, self.channel_names)
        if self.pair_cpu_batches and self.device.type == "cpu":
            pair_cpu_batches(self.network)

    # ---- nnU-Net's file pipeline ----------------------------------------------------------------------------
    def _manage_input_and_output_lists(self, list_of_lists_or_source_folder,
                                       output_folder_or_list_of_truncated_output_files,
                                       folder_with_segs_from_prev_stage=None, overwrite=True, part_id=0, num_parts=1,
                                       save_probabilities=False):
        ending = self.dataset_json["file_ending"]
        if isinstance(list_of_lists_or_source_folder, str):
            strays = unrecognised_files(list_of_lists_or_source_folder, ending)
            if strays and not self.allow_unrecognised_files:
                raise ValueError(unrecognised_message(list_of_lists_or_source_folder, strays, ending,
                                                      self.channel_names))
            for name in strays:
                self.log(f"WARNING: {name} is not a channel file CASE_XXXX{ending} of this model; skipped "
                         f"(--allow_unrecognised_files)")
            cases = find_cases(list_of_lists_or_source_folder, self.channel_names, ending, self.missing_indices)
            list_of_lists_or_source_folder = [c.on_disk for c in cases]
        mine = list_of_lists_or_source_folder[part_id::num_parts]
        self.record = PredictionRecord(cases={c.case_id: c for c in (
            case_from_files(files, self.channel_names, ending, self.missing_indices) for files in mine)})
        lists, outputs, segs = super()._manage_input_and_output_lists(
            list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
            folder_with_segs_from_prev_stage, overwrite, part_id, num_parts, save_probabilities)
        kept = {case_from_files(files, self.channel_names, ending).case_id for files in lists}
        self.record.skipped = [c for c in self.record.cases if c not in kept]
        return lists, outputs, segs

    def _internal_get_data_iterator_from_lists_of_filenames(self, input_list_of_lists, seg_from_prev_stage_files,
                                                            output_filenames_truncated, num_processes):
        ending, jobs = self.dataset_json["file_ending"], []
        for k, files in enumerate(input_list_of_lists):
            case = case_from_files(files, self.channel_names, ending, self.missing_indices)
            problem = case.problem(self.channel_names)
            if problem:
                self._fail(case.case_id, problem)
                continue
            # nnU-Net's export writes to a temporary name; the atomic writer moves it into place
            ofile = None if output_filenames_truncated is None else \
                partial_path(output_filenames_truncated[k], keep_ending=False)
            jobs.append(Job(case, seg_from_prev_stage_files[k] if seg_from_prev_stage_files else None, ofile))

        def on_start(job: Job) -> None:
            self.record.predicted.append(job.case.case_id)
            self.log(f"[{len(self.record.predicted)}/{len(jobs)}] {job.case.describe(self.channel_names)}")

        return absent_channel_iterator(jobs, self.plans_manager, self.configuration_manager, self.dataset_json,
                                       num_processes, self._fail, on_start, pin_memory=self.device.type == "cuda",
                                       verbose=self.verbose_preprocessing, policy=self.read_policy)

    def _fail(self, case_id: str, message: str) -> None:
        self.record.failed[case_id] = message
        self.log(f"ERROR {message}")

    # ---- one case at a time (the benchmark) -------------------------------------------------------------------
    def preprocess(self, image_files: list[str | None], case_id: str | None = None) -> PreprocessedCase:
        """Read the present files (None: absent), run nnU-Net's preprocessing, zero the absent channels."""
        return preprocess_files(image_files, self.plans_manager, self.configuration_manager, self.dataset_json,
                                self.verbose_preprocessing, case_id, policy=self.read_policy)

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
        """nnU-Net's sliding-window logits of a preprocessed case, with the channels not in ``present`` zeroed.

        Raises:
            ValueError: If no channel is left.
        """
        mask = self.presence(case, present)
        if not mask.any():
            raise ValueError(f"case {case.case_id}: no channel left to predict from (case has "
                             f"{[n for n, m in zip(self.channel_names, case.present) if m]}, asked for {present}).")
        data = case.data if np.array_equal(mask, case.present) else zero_absent_channels(case.data, mask)
        return self.predict_logits_from_preprocessed_data(data)

    def segmentation(self, case: PreprocessedCase, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """The label map in the case's original image geometry (nnU-Net's resampling, uncropping, transpose)."""
        return convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, self.plans_manager, self.configuration_manager, self.label_manager, case.properties)

    def preprocessing_key(self) -> str:
        """A hash of everything preprocessing depends on; equal keys give identical preprocessed cases.

        Covers the configuration without :data:`NETWORK_ONLY_FIELDS`, the plans' reader/writer,
        axis transpose and intensity statistics, and the dataset's channels and file ending.
        """
        plans = self.plans_manager.plans
        configuration = {k: v for k, v in self.configuration_manager.configuration.items()
                         if k not in NETWORK_ONLY_FIELDS}
        plans_fields = ("image_reader_writer", "transpose_forward", "foreground_intensity_properties_per_channel")
        payload = {"configuration": configuration, **{k: plans.get(k) for k in plans_fields},
                   "channel_names": self.channel_names, "file_ending": self.dataset_json.get("file_ending")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
