"""Subset-aware validation: the pseudo Dice over subsets, the rotation, and which checkpoint becomes best."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nnunetv2_mstkd.training.subset_validation import equal_weight_mean, subset_pseudo_dice

from conftest import CONFIGURATION, PLANS, train_env


def test_pseudo_dice_pools_per_subset_then_weighs_subsets_equally():
    # three batches, two regions; batches 0 and 2 scored with subset 1, batch 1 with subset 0, subset 2 unseen
    tp = np.array([[10, 0], [2, 4], [30, 0]])
    fp = np.array([[0, 0], [2, 0], [10, 0]])
    fn = np.array([[10, 0], [0, 4], [0, 0]])
    per_subset = subset_pseudo_dice(tp, fp, fn, np.array([1, 0, 1]), 3)
    # subset 0: region 0 2*2/(4+2+0)=2/3, region 1 8/(8+0+4)=2/3; subset 1 pools batches 0 and 2:
    # region 0 2*40/(80+10+10)=0.8, region 1 empty in prediction and reference: NaN; subset 2: NaN
    np.testing.assert_allclose(per_subset[0], [2 / 3, 2 / 3])
    assert per_subset[1, 0] == pytest.approx(0.8) and np.isnan(per_subset[1, 1])
    assert np.isnan(per_subset[2]).all()
    per_region, mean = equal_weight_mean(per_subset)
    # each subset counts once, however many batches it had: region 0 (2/3 + 0.8)/2, not pooled 2*42/(84+12+10)
    assert per_region == pytest.approx([(2 / 3 + 0.8) / 2, 2 / 3])
    assert mean == pytest.approx(((2 / 3 + 0.8) / 2 + 2 / 3) / 2)


class _Rule(nn.Module):
    """A hand-made "network": every region where the brightest present channel exceeds 1 (nnU-Net z-scores).

    ``complete_only``: predicts only when every channel is present (good on complete scans, empty otherwise).
    ``partial_only``: predicts only when a channel is missing (empty on complete scans).
    """

    def __init__(self, shapes, tag: int, complete_only: bool):
        super().__init__()
        self.shapes, self.complete_only = shapes, complete_only
        self.register_buffer("tag", torch.tensor(tag))

    def forward(self, x):
        present = x.flatten(2).abs().amax(-1) > 0
        complete = present.all(1).view(-1, 1, 1, 1, 1)
        logits = 8.0 * (x.amax(1, keepdim=True) - 1.0).expand(-1, 3, *x.shape[2:])
        keep = complete if self.complete_only else ~complete
        logits = torch.where(keep, logits, torch.full_like(logits, -10.0))
        return [F.interpolate(logits, size=tuple(s), mode="trilinear") for s in self.shapes]


def _selection(dataset_id, output_folder, subset_validation: bool, batches=None):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(dataset_id), CONFIGURATION, 0, "nnUNetTrainerModalityDropout_1ep10it",
                                    PLANS, device=torch.device("cpu"))
    trainer.output_folder = str(output_folder)
    trainer.log_file = str(output_folder / "log.txt")
    output_folder.mkdir()
    trainer.subset_validation = subset_validation
    trainer.initialize()
    if batches is None:
        _, val_loader = trainer.get_dataloaders()
        batches = [next(val_loader) for _ in range(15)]
    trainer.num_val_iterations_per_epoch = len(batches)
    shapes = [t.shape[2:] for t in batches[0]["target"]]
    for net in (_Rule(shapes, 0, complete_only=True), _Rule(shapes, 1, complete_only=False)):
        trainer.network = net
        trainer.on_epoch_start()
        trainer.logger.log("train_losses", 0.0, trainer.current_epoch)
        trainer.logger.log("lrs", 0.01, trainer.current_epoch)
        with torch.no_grad():
            trainer.on_validation_epoch_start()
            outputs = [trainer.validation_step(b) for b in batches]
            trainer.on_validation_epoch_end(outputs)
        trainer.on_epoch_end()
    best = torch.load(output_folder / "checkpoint_best.pth", map_location="cpu", weights_only=False)
    return int(best["network_weights"]["tag"]), trainer.logger.local_logger.my_fantastic_logging, batches


def test_a_checkpoint_better_on_complete_scans_but_worse_over_subsets_is_not_chosen(planned_dataset, monkeypatch,
                                                                                   tmp_path):
    root, dataset_id = planned_dataset
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    # epoch 0: a model that segments complete scans only; epoch 1: one that segments only incomplete ones
    best, logged, batches = _selection(dataset_id, tmp_path / "subsets", subset_validation=True)
    complete, per_subset_mean = logged["complete_pseudo_dice"], logged["mean_fg_dice"]
    assert complete[0] > 0.05 and not complete[1] > 0  # the premise: epoch 0 is better on complete scans ...
    assert per_subset_mean[1] > per_subset_mean[0]  # ... and worse over the 15 subsets
    assert sum(np.isfinite(logged["subset_pseudo_dice"][1])) == 15  # 15 batches: every subset once
    assert best == 1
    assert (tmp_path / "subsets" / "progress_subsets.png").is_file()
    log = (tmp_path / "subsets" / "log.txt").read_text()
    assert "Pseudo dice, mean over 15 of 15 modality subsets" in log
    # nnU-Net's own validation (complete scans only) keeps epoch 0 on the same batches
    best_plain, logged_plain, _ = _selection(dataset_id, tmp_path / "plain", subset_validation=False,
                                             batches=batches)
    assert logged_plain["mean_fg_dice"][0] > 0.05 and not logged_plain["mean_fg_dice"][1] > 0
    assert best_plain == 0
