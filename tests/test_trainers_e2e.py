"""Every trainer trains and validates through the stock ``nnUNetv2_train -device cpu``."""
from __future__ import annotations

import csv
import glob
import json
import os
import subprocess

import pytest
import torch

from nnunetv2_mstkd.training.teacher import sha256_of

from conftest import CONFIGURATION, PLANS, bin_path, train_env

pytestmark = pytest.mark.e2e
TEACHER = "nnUNetTrainerMSTKD_noKD_1ep10it"  # the default student's teacher


def checkpoint(folder: str, name: str = "checkpoint_final.pth") -> dict:
    return torch.load(os.path.join(folder, "fold_0", name), map_location="cpu", weights_only=False)


def training_log(folder: str) -> str:
    return "".join(open(p).read() for p in sorted(glob.glob(os.path.join(folder, "fold_0", "training_log_*.txt"))))


def test_student_distils_from_the_frozen_teacher(train_model, planned_dataset, monkeypatch):
    teacher = train_model(TEACHER)
    student = train_model("nnUNetTrainerMSTKD_1ep10it")
    ckpt_s, ckpt_t = checkpoint(student), checkpoint(teacher)
    # The teacher lives outside the student's network: same architecture, so the same keys, and nothing more.
    assert set(ckpt_s["network_weights"]) == set(ckpt_t["network_weights"])
    assert any(k.startswith("transformers.") for k in ckpt_s["network_weights"])
    info = ckpt_s["mstkd"]["teacher"]
    # recorded relative to nnUNet_results, with what identifies it, so the record survives a move
    results = os.path.dirname(os.path.dirname(teacher))
    assert info["relative_to"] == "nnUNet_results" and not os.path.isabs(info["checkpoint"])
    assert os.path.join(results, info["checkpoint"]) == os.path.join(teacher, "fold_0", "checkpoint_final.pth")
    assert info["sha256"] == sha256_of(os.path.join(results, info["checkpoint"]))
    assert (info["trainer_name"], info["plans"], info["configuration"], info["fold"]) == (
        TEACHER, PLANS, CONFIGURATION, 0)
    assert ckpt_s["mstkd"]["discriminator"] and ckpt_s["mstkd"]["discriminator_optimizer"]["state"]
    logged = ckpt_s["logging"]
    for key in ("loss_seg", "loss_mstkd", "loss_dmld", "loss_gsme", "loss_disc", "loss_att", "loss_feat",
                "loss_prob", "loss_lskd", "loss_gram", "loss_adv"):
        assert len(logged[key]) == 1 and logged[key][0] == logged[key][0], key  # one finite value per epoch
    assert logged["loss_mstkd"][0] > 0 and logged["loss_dmld"][0] > 0 and logged["loss_gsme"][0] > 0
    log = training_log(student)
    assert "loss terms: seg" in log and "% of seg+1" in log and "Frozen teacher:" in log
    assert os.path.isfile(os.path.join(student, "fold_0", "loss_terms.png"))
    assert os.path.isfile(os.path.join(student, "fold_0", "validation", "summary.json"))

    # The stock predictor loads the student's checkpoint unchanged.
    root, _ = planned_dataset
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False)
    predictor.initialize_from_trained_model_folder(student, (0,), "checkpoint_final.pth")
    assert type(predictor.network).__name__ == "MSTKDUNet"


@pytest.mark.parametrize("trainer, present, absent", [
    ("nnUNetTrainerModalityDropout_1ep10it", [], ["loss_seg", "loss_mstkd"]),
    ("nnUNetTrainerMSTKD_noKD_1ep10it", [], ["loss_seg", "loss_mstkd"]),
])
def test_baselines_train(train_model, trainer, present, absent):
    """The two teacher-free trainers end to end (the paper's ablations step in tests/test_student_step.py)."""
    folder = train_model(trainer)
    ckpt = checkpoint(folder)
    for key in present:
        assert key in ckpt["logging"], key
    for key in absent:
        assert key not in ckpt["logging"], key
    if "MSTKD" in trainer:
        assert any(k.startswith("transformers.") for k in ckpt["network_weights"])
    else:
        assert not any(k.startswith("transformers.") for k in ckpt["network_weights"])
    nnunet = json.load(open(os.path.join(folder, "fold_0", "validation", "summary.json")))
    # the 15-subset validation beside nnU-Net's: its complete-input column is nnU-Net's own validation
    subsets = json.load(open(os.path.join(folder, "fold_0", "validation_subsets", "summary.json")))
    assert len(subsets["subsets"]) == 15 and subsets["regions"] == ["WT", "TC", "ET"]
    assert subsets["complete_input_dice"] == pytest.approx(nnunet["foreground_mean"]["Dice"], abs=1e-3)
    assert 0 < subsets["subset_mean_dice"] < 1


def test_missing_teacher_prints_the_command_that_trains_it(planned_dataset):
    root, dataset_id = planned_dataset
    proc = subprocess.run([bin_path("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-p", PLANS, "-tr",
                           "nnUNetTrainerMSTKD_5ep25it", "-device", "cpu"], env=train_env(root),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    expected = (f"nnUNetv2_train Dataset{dataset_id}_SynthBraTS {CONFIGURATION} 0 -p {PLANS} "
                f"-tr nnUNetTrainerMSTKD_noKD_5ep25it")
    assert expected in proc.stdout + proc.stderr


def test_a_trained_student_travels_without_its_teacher(train_model, planned_dataset, tmp_path):
    """Validation and prediction of a copied results folder that holds the student alone."""
    import shutil

    from conftest import run

    root, dataset_id = planned_dataset
    train_model(TEACHER)
    student = train_model("nnUNetTrainerMSTKD_1ep10it")
    dataset = os.path.basename(os.path.dirname(student))
    moved = tmp_path / "results" / dataset / os.path.basename(student)
    shutil.copytree(student, moved)
    env = train_env(root, nnUNet_results=str(tmp_path / "results"))
    (moved / "fold_0" / "validation" / "summary.json").unlink()
    run([bin_path("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-p", PLANS, "-tr",
         "nnUNetTrainerMSTKD_1ep10it", "-device", "cpu", "--val"], env)
    assert (moved / "fold_0" / "validation" / "summary.json").is_file()
    images = next((root / "raw").glob(f"Dataset{dataset_id:03d}_*")) / "imagesTs"
    run([bin_path("mstkd_predict"), "-i", str(images), "-o", str(tmp_path / "pred"), "-m", str(moved), "-f", "0",
         "--missing", "T1ce", "-device", "cpu", "--disable_tta", "-npp", "0", "-nps", "1"], env)
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 2


def test_models_rank_by_their_mean_over_subsets(train_model, planned_dataset, tmp_path, monkeypatch, capsys):
    """mstkd_rank_models orders trained folds by the 15-subset mean and names the command for a missing one."""
    from nnunetv2_mstkd.evaluation.rank_models import main

    root, dataset_id = planned_dataset
    folders = {t: train_model(t) for t in ("nnUNetTrainerModalityDropout_1ep10it", TEACHER)}
    means = {t: json.load(open(os.path.join(f, "fold_0", "validation_subsets", "summary.json")))["subset_mean_dice"]
             for t, f in folders.items()}
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    assert main(["-d", str(dataset_id), "-c", CONFIGURATION, "-p", PLANS, "-f", "0", "-tr", *folders,
                 "nnUNetTrainer_5ep25it", "-o", str(tmp_path)]) == 0  # mstkd_rank_models, in this process
    assert "-tr nnUNetTrainer_5ep25it --val" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "subset_ranking.csv")))
    assert [r["trainer"] for r in rows] == sorted(means, key=lambda t: -means[t])
    assert [float(r["subset_mean_dice"]) for r in rows] == pytest.approx(sorted(means.values(), reverse=True))
    assert "| 1 |" in (tmp_path / "subset_ranking.md").read_text()
