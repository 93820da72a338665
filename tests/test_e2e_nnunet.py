"""Foundation end to end: synthesise → plan → CPU plans → nnUNetv2_train → nnUNetv2_predict → Dice."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_mstkd.evaluation.metrics import region_metrics

from conftest import CONFIGURATION, PLANS, bin_path, nnunet_env, run

pytestmark = pytest.mark.e2e


def test_stock_commands_train_and_predict_the_synthetic_dataset(train_model, planned_dataset, tmp_path):
    root, dataset_id = planned_dataset
    train_model("nnUNetTrainer_5ep25it")
    raw = next((root / "raw").glob(f"Dataset{dataset_id:03d}_*"))
    out = tmp_path / "pred"
    run([bin_path("nnUNetv2_predict"), "-i", str(raw / "imagesTs"), "-o", str(out), "-d", str(dataset_id), "-c",
         CONFIGURATION, "-p", PLANS, "-f", "0", "-tr", "nnUNetTrainer_5ep25it", "--disable_tta", "-device", "cpu",
         "-npp", "1", "-nps", "1"], nnunet_env(root))
    refs = sorted((raw / "labelsTs").glob("*.nii.gz"))
    assert len(refs) == 2
    dice = {"WT": [], "TC": [], "ET": []}
    background = {"WT": [], "TC": [], "ET": []}
    for ref_path in refs:
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_path)))
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(out / ref_path.name)))
        assert pred.shape == ref.shape and set(np.unique(pred)) <= {0, 1, 2, 3}
        for region, m in region_metrics(pred, ref, (1.0, 1.0, 1.0)).items():
            dice[region].append(m["Dice"])
        for region, m in region_metrics(np.zeros_like(ref), ref, (1.0, 1.0, 1.0)).items():
            background[region].append(m["Dice"])
    mean = {r: float(np.mean(v)) for r, v in dice.items()}
    # An all-background prediction scores 0 on cases that have a tumour; a briefly trained nnU-Net is far above.
    assert max(np.mean(v) for v in background.values()) == 0.0
    assert mean["WT"] > 0.5, mean
