"""Subset-aware validation: nnU-Net's pseudo Dice, ``checkpoint_best.pth`` and final validation over the subsets.

A model trained with modality dropout is meant for every modality subset, so it is selected on all of them.
:class:`SubsetValidationMixin` changes three things in a trainer:

* **Online validation.** Validation batch ``i`` of epoch ``e`` sees subset ``(e * n_val + i) mod S``
  (a deterministic rotation; ``n_val`` is ``num_val_iterations_per_epoch``, ``S`` the number of
  subsets). TP/FP/FN are pooled per subset, Dice is computed per subset and region, and the subsets
  are then averaged with equal weight. That mean is what nnU-Net logs as ``mean_fg_dice``, so it
  drives the EMA pseudo Dice, ``checkpoint_best.pth`` and the green curve of ``progress.png``. The
  epoch log prints it beside the complete-input value, and ``progress_subsets.png`` draws every
  subset. An epoch with fewer validation batches than subsets sees the subsets its rotation reaches.
* **Final validation** (end of training and ``nnUNetv2_train ... --val``): nnU-Net's full-modality
  validation runs unchanged (``validation/summary.json``, which ``nnUNetv2_find_best_configuration``
  reads), then every validation case is predicted once per subset into
  ``validation_subsets/`` (:mod:`~nnunetv2_mstkd.evaluation.fold_validation`).
* ``subset_validation = False`` restores nnU-Net's complete-input validation (class attribute).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist

from nnunetv2_mstkd.modalities import channel_names_of, paper_subsets, subset_label, zero_absent_channels
from nnunetv2_mstkd.training.term_logging import log_epoch_terms

#: Keys added to nnU-Net's logger: per epoch, the pseudo Dice of each subset and of the complete input.
SUBSET_DICE_KEY, COMPLETE_DICE_KEY = "subset_pseudo_dice", "complete_pseudo_dice"


def subset_pseudo_dice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, subset_ids: np.ndarray,
                       n_subsets: int) -> np.ndarray:
    """nnU-Net's pseudo Dice ``2TP / (2TP + FP + FN)`` pooled over the batches of each subset.

    Args:
        tp, fp, fn: ``(batches, regions)`` voxel counts, one row per validation batch.
        subset_ids: ``(batches,)`` the subset each batch was scored with.
        n_subsets: Number of subsets ``S``.

    Returns:
        ``(S, regions)``; NaN for a subset no batch saw, or a region empty in prediction and reference.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    ids = np.asarray(subset_ids)
    out = np.full((n_subsets, tp.shape[1]), np.nan)
    for s in np.unique(ids):
        t, p, n = tp[ids == s].sum(0), fp[ids == s].sum(0), fn[ids == s].sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = 2 * t / (2 * t + p + n)
    return out


@contextmanager
def nan_quiet():
    """Silence numpy's "mean of empty slice" for an all-NaN column (a region no subset could score)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def equal_weight_mean(per_subset: np.ndarray) -> tuple[list[float], float]:
    """``(per-region mean over the subsets, mean over regions)``, each subset weighted equally (NaN skipped)."""
    with nan_quiet():
        per_region = np.nanmean(per_subset, axis=0)
        return [float(v) for v in per_region], float(np.nanmean(per_region))


class SubsetValidationMixin:
    """Trainer mix-in: validate and select over the modality subsets the model is trained for.

    Class attributes:
        subset_validation: Score online validation over the subsets (True) or complete inputs only
            (nnU-Net's behaviour).
        subset_validation_at_end: After nnU-Net's final validation, also predict the validation cases
            under every subset into ``validation_subsets/``.
        modality_subsets: The subsets the model is trained for (channel-index tuples); None for all
            non-empty subsets of the image channels.
    """

    subset_validation: bool = True
    subset_validation_at_end: bool = True
    modality_subsets: tuple[tuple[int, ...], ...] | None = None

    def num_image_channels(self) -> int:
        """The dataset's image channels (``dataset.json``); a cascade's previous-stage channels come after them."""
        return len(channel_names_of(self.dataset_json))

    def trained_subsets(self) -> list[tuple[int, ...]]:
        """The subsets to validate on, in the paper's column order when the channels are BraTS's four."""
        if self.modality_subsets is not None:
            return [tuple(s) for s in self.modality_subsets]
        return paper_subsets(channel_names_of(self.dataset_json))

    def subset_labels(self) -> list[str]:
        """Labels of :meth:`trained_subsets` (``FL+T1Gd``, ``All`` ...)."""
        names = channel_names_of(self.dataset_json)
        return [subset_label(s, names) for s in self.trained_subsets()]

    def complete_subset_index(self) -> int | None:
        """Index in :meth:`trained_subsets` of the subset with every image channel, or None if not trained for."""
        n = self.num_image_channels()
        return next((i for i, s in enumerate(self.trained_subsets()) if len(s) == n), None)

    def mask_image_channels(self, data: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Zero the absent image channels of a batch; a cascade's segmentation channels pass through.

        Args:
            data: ``(B, C_images + C_previous_stage, *spatial)``.
            present: Boolean ``(B, C_images)``.
        """
        n = self.num_image_channels()
        if data.shape[1] == n:
            return zero_absent_channels(data, present)
        return torch.cat([zero_absent_channels(data[:, :n], present), data[:, n:]], dim=1)

    # ---- online validation ---------------------------------------------------------------------------------
    def validation_subset_index(self, batch_index: int) -> int:
        """The subset validation batch ``batch_index`` of the current epoch is scored with."""
        return (self.current_epoch * self.num_val_iterations_per_epoch + batch_index) % len(self.trained_subsets())

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self._validation_batches = 0

    def validation_step(self, batch: dict) -> dict:
        if not self.subset_validation:
            return super().validation_step(batch)
        batch_index = getattr(self, "_validation_batches", 0)
        self._validation_batches = batch_index + 1
        index = self.validation_subset_index(batch_index)
        subset = self.trained_subsets()[index]
        data = batch["data"]
        present = torch.zeros(data.shape[0], self.num_image_channels(), dtype=torch.bool)
        present[:, list(subset)] = True
        out = super().validation_step({**batch, "data": self.mask_image_channels(data, present)})
        out["subset"] = index
        return out

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        if not self.subset_validation:
            return super().on_validation_epoch_end(val_outputs)
        ids = np.array([o["subset"] for o in val_outputs])
        tp, fp, fn = (np.stack([o[k] for o in val_outputs]) for k in ("tp_hard", "fp_hard", "fn_hard"))
        loss = float(np.mean([o["loss"] for o in val_outputs]))
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (ids, tp, fp, fn, loss))
            ids, tp, fp, fn = (np.concatenate([g[i] for g in gathered]) for i in range(4))
            loss = float(np.mean([g[4] for g in gathered]))
        subsets = self.trained_subsets()
        per_subset = subset_pseudo_dice(tp, fp, fn, ids, len(subsets))
        per_region, mean = equal_weight_mean(per_subset)
        with nan_quiet():
            per_subset_mean = [float(v) for v in np.nanmean(per_subset, axis=1)]
        complete = self.complete_subset_index()
        # nnU-Net's keys: the EMA, checkpoint_best.pth and progress.png now follow the mean over subsets
        self.logger.log("mean_fg_dice", mean, self.current_epoch)
        self.logger.log("dice_per_class_or_region", per_region, self.current_epoch)
        self.logger.log("val_losses", loss, self.current_epoch)
        log_epoch_terms(self.logger.local_logger.my_fantastic_logging,
                        {SUBSET_DICE_KEY: per_subset_mean,
                         COMPLETE_DICE_KEY: float("nan") if complete is None else per_subset_mean[complete]},
                        self.current_epoch)

    def on_epoch_end(self):
        if self.subset_validation:
            logging = self.logger.local_logger.my_fantastic_logging
            values = np.asarray(logging[SUBSET_DICE_KEY][self.current_epoch], dtype=float)
            seen = ", ".join(f"{lab} {v:.4f}" for lab, v in zip(self.subset_labels(), values) if np.isfinite(v))
            complete = logging[COMPLETE_DICE_KEY][self.current_epoch]
            complete = f"{complete:.4f}" if np.isfinite(complete) else "not in this epoch's rotation"
            self.print_to_log_file(f"Pseudo dice, mean over {int(np.isfinite(values).sum())} of {values.size} "
                                   f"modality subsets: {logging['mean_fg_dice'][self.current_epoch]:.4f} "
                                   f"(complete input: {complete}); {seen}")
        epoch = self.current_epoch
        super().on_epoch_end()
        if self.subset_validation and self.local_rank == 0:
            from nnunetv2_mstkd.training.subset_plot import plot_subset_dice

            plot_subset_dice(self.logger.local_logger.my_fantastic_logging, self.subset_labels(),
                             self.output_folder, last_epoch=epoch)

    # ---- final validation ----------------------------------------------------------------------------------
    def perform_actual_validation(self, save_probabilities: bool = False):
        super().perform_actual_validation(save_probabilities)
        if not self.subset_validation_at_end or self.local_rank != 0:
            return
        from nnunetv2_mstkd.evaluation.fold_validation import validate_fold_on_subsets

        validate_fold_on_subsets(self)
