"""A cascade's full-resolution stage: modality dropout and subset validation leave the previous stage alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import CONFIGURATION, PLANS, train_env

pytestmark = pytest.mark.e2e
CASCADE_PLANS = "nnUNetPlansCPUCascade"
TRAINER = "nnUNetTrainerModalityDropout_1ep10it"


def _cascade_plans(root, dataset_id) -> None:
    """The CPU plans plus nnU-Net's two cascade configurations, and a "previous stage" that predicted the truth.

    ``3d_lowres`` reuses the 3d_fullres data (the test needs its name, not its resolution); the previous stage's
    predictions are the reference segmentations, where nnU-Net's lowres validation would write them.
    """
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = next((root / "preprocessed").glob(f"Dataset{dataset_id:03d}_*"))
    plans = json.load(open(folder / f"{PLANS}.json"))
    plans["plans_name"] = CASCADE_PLANS
    plans["configurations"]["3d_lowres"] = {**plans["configurations"][CONFIGURATION],
                                            "next_stage": ["3d_cascade_fullres"]}
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": CONFIGURATION, "previous_stage": "3d_lowres"}
    json.dump(plans, open(folder / f"{CASCADE_PLANS}.json", "w"))
    data = folder / plans["configurations"][CONFIGURATION]["data_identifier"]
    previous = (root / "results" / folder.name / f"{TRAINER}__{CASCADE_PLANS}__3d_lowres" / "predicted_next_stage"
                / "3d_cascade_fullres")
    previous.mkdir(parents=True, exist_ok=True)
    dataset_class = infer_dataset_class(str(data))
    dataset = dataset_class(str(data))
    for key in dataset.identifiers:  # written as nnU-Net writes a stage's predictions: labels, no channel axis
        seg = np.maximum(np.asarray(dataset.load_case(key)[1][0]), 0).astype(np.uint8)
        dataset_class.save_seg(seg, str(previous / key))


def test_dropout_and_subset_validation_touch_image_channels_only(planned_dataset, monkeypatch):
    root, dataset_id = planned_dataset
    _cascade_plans(root, dataset_id)
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(dataset_id), "3d_cascade_fullres", 0, TRAINER, CASCADE_PLANS,
                                    device=torch.device("cpu"))
    trainer.initialize()
    assert trainer.is_cascaded and trainer.num_input_channels == 4 + 3  # images, then one-hot labels 1, 2, 3
    train_loader, val_loader = trainer.get_dataloaders()
    batch = next(train_loader)
    assert batch["data"].shape[1] == 7 and torch.count_nonzero(batch["data"][:, 4:]) > 0
    trainer.modality_subsets = ((1,),)  # T1ce only: every other image channel dropped
    dropped, present = trainer.drop_modalities(batch["data"])
    assert torch.count_nonzero(dropped[:, [0, 2, 3]]) == 0 and torch.equal(dropped[:, 1], batch["data"][:, 1])
    assert torch.equal(dropped[:, 4:], batch["data"][:, 4:])  # the previous stage's segmentation is never absent
    out = trainer.train_step(batch)
    assert torch.isfinite(torch.tensor(out["loss"]))
    # validation: the rotation masks image channels only, and scores the subset it names
    seen = []
    trainer.network.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    val = next(val_loader)
    with torch.no_grad():
        trainer.on_validation_epoch_start()
        result = trainer.validation_step(val)
    assert result["subset"] == 0 and torch.equal(seen[0][:, 4:], val["data"][:, 4:])
    assert torch.count_nonzero(seen[0][:, [0, 2, 3]]) == 0  # subset 0 is T1ce alone: (1,) is all it trains
