"""nnU-Net's residual-encoder U-Net end to end: CPU-sized ResEnc plans, the three trainers, the benchmark."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import CONFIGURATION, bin_path, nnunet_env, run, train_env

pytestmark = pytest.mark.e2e
RESENC_PLANS = "nnUNetResEncUNetPlansCPU"
TRAINERS = ("nnUNetTrainerModalityDropout_1ep10it", "nnUNetTrainerMSTKD_noKD_1ep10it", "nnUNetTrainerMSTKD_1ep10it")


def test_teacher_student_dropout_and_benchmark_on_resenc_plans(planned_dataset, tmp_path, monkeypatch):
    root, dataset_id = planned_dataset
    run([bin_path("mstkd_apply_plans"), "-d", str(dataset_id), "-pl", "nnUNetPlannerResEncCPU"], nnunet_env(root))
    dataset_folder = next((root / "preprocessed").glob(f"Dataset{dataset_id:03d}_*"))
    plans = json.load(open(dataset_folder / f"{RESENC_PLANS}.json"))
    arch = plans["configurations"][CONFIGURATION]["architecture"]
    assert arch["network_class_name"].endswith("ResidualEncoderUNet")
    assert arch["arch_kwargs"]["n_blocks_per_stage"] == [1, 3, 4]  # nnU-Net's ResEnc blocks, CPU-sized stages
    assert plans["configurations"][CONFIGURATION]["patch_size"] == [32, 32, 32]
    assert plans["configurations"][CONFIGURATION]["data_identifier"] == "nnUNetPlans_3d_fullres"  # shared data
    # the baseline and the teacher through nnUNetv2_train's own function in this process (its start-up is
    # the suite's cost, not the test's point), the student through the command itself
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    from nnunetv2.run.run_training import run_training

    for trainer in TRAINERS[:2]:
        run_training(str(dataset_id), CONFIGURATION, 0, trainer, RESENC_PLANS, device=torch.device("cpu"))
    run([bin_path("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-p", RESENC_PLANS, "-tr", TRAINERS[2],
         "-device", "cpu"], train_env(root), timeout=900)
    results = next((root / "results").glob(f"Dataset{dataset_id:03d}_*"))
    student = results / f"nnUNetTrainerMSTKD_1ep10it__{RESENC_PLANS}__{CONFIGURATION}" / "fold_0"
    ckpt = torch.load(student / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    keys = ckpt["network_weights"]
    # residual blocks in the encoder, transformer blocks on the two lowest stages, the _noKD teacher recorded
    assert any(".blocks." in k for k in keys) and any(k.startswith("transformers.1.") for k in keys)
    assert ckpt["mstkd"]["teacher"]["trainer_name"] == "nnUNetTrainerMSTKD_noKD_1ep10it"
    assert ckpt["mstkd"]["teacher"]["plans"] == RESENC_PLANS
    assert (student / "validation_subsets" / "summary.json").is_file()
    out = tmp_path / "bench"
    run([bin_path("mstkd_benchmark"), "-d", str(dataset_id), "-c", CONFIGURATION, "-f", "0", "-p", RESENC_PLANS,
         "-o", str(out), "-device", "cpu", "--disable_tta", "-tr", *TRAINERS], nnunet_env(root), timeout=900)
    summary = json.load(open(out / "summary.json"))
    assert summary["models"] == list(TRAINERS) and len(summary["subsets"]) == 15
    assert all(summary["results"][m]["Avg"]["WT"]["Dice"]["n"] > 0 for m in TRAINERS)
