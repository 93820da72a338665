"""Dedicated models: the network ignores the channels outside its subset; the benchmark scores a zoo as one row."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_mstkd.env import trainers_dir
from nnunetv2_mstkd.evaluation.dedicated_zoo import DEDICATED_ROW, dedicated_trainer_name, zoo_trainers
from nnunetv2_mstkd.modalities import BRATS_CHANNELS, resolve_channels
from nnunetv2_mstkd.training.dedicated import keep_channels

from conftest import CONFIGURATION, PLANS, bin_path, nnunet_env, run

TRAINED = "nnUNetTrainerDedicated_T1ce_1ep10it"


def _dedicated_module():
    sys.path.insert(0, trainers_dir())
    try:
        import mstkd_dedicated
    finally:
        sys.path.pop(0)
    return mstkd_dedicated


def test_the_zoo_names_one_class_per_subset_and_each_uses_its_own_channels():
    classes = _dedicated_module()
    names = zoo_trainers("nnUNetTrainerDedicated_{subset}")
    assert len(names) == 15 and len(set(names.values())) == 15
    assert names["FL+T1Gd"] == "nnUNetTrainerDedicated_T1ce_FLAIR" and names["All"].endswith("_T1_T1ce_T2_FLAIR")
    for label, name in names.items():
        cls = getattr(classes, name)
        wanted = "T1 T1ce T2 FLAIR".split() if label == "All" else \
            [{"T1Gd": "T1ce", "FL": "FLAIR"}.get(p, p) for p in label.split("+")]
        assert cls.dedicated_indices() == tuple(resolve_channels(wanted, BRATS_CHANNELS))


def test_template_needs_a_subset_field_and_brats_channels():
    name = dedicated_trainer_name((1, 3), ["t1n", "t1c", "t2w", "t2f"], "X_{subset}_10ep25it")
    assert name == "X_T1ce_FLAIR_10ep25it"
    with pytest.raises(ValueError, match="subset"):
        dedicated_trainer_name((0,), BRATS_CHANNELS, "nnUNetTrainerDedicated_T1")
    with pytest.raises(ValueError, match="BraTS"):
        dedicated_trainer_name((0,), ["CT", "PET"])


def test_network_zeroes_the_channels_outside_its_subset():
    net = keep_channels(torch.nn.Conv3d(4, 2, 3, padding=1), (1, 3), 4)
    x = torch.randn(2, 4, 6, 6, 6)
    y = x.clone()
    y[:, 0], y[:, 2] = 7.0, -3.0
    zeroed = x.clone()
    zeroed[:, [0, 2]] = 0
    assert torch.equal(net(x), net(y)) and torch.equal(net(x), net(zeroed))
    y[:, 3] += 1
    assert not torch.allclose(net(x), net(y))
    assert net(torch.zeros(1, 4, 6, 6, 6)).shape == (1, 2, 6, 6, 6)  # none of its sequences: zeros, no refusal


def test_stock_predict_ignores_other_channels_and_a_zoo_is_one_row(train_model, planned_dataset, tmp_path):
    root, dataset_id = planned_dataset
    folder = train_model(TRAINED)
    env = nnunet_env(root)
    raw = next((root / "raw").glob(f"Dataset{dataset_id:03d}_*"))
    case = sorted(p.name[:-len("_0000.nii.gz")] for p in (raw / "imagesTs").glob("*_0000.nii.gz"))[0]
    clean, other = tmp_path / "clean", tmp_path / "other"
    clean.mkdir()
    other.mkdir()
    t1ce = sitk.ReadImage(str(raw / "imagesTs" / f"{case}_0001.nii.gz"))
    for c in range(4):
        name = f"{case}_{c:04d}.nii.gz"
        shutil.copy(raw / "imagesTs" / name, clean / name)
        # every channel but T1ce replaced: other values, the same non-zero region (nnU-Net crops and
        # normalises within the union of the channels' non-zero regions, so that must stay)
        sitk.WriteImage(t1ce if c == 1 else sitk.Cast(t1ce, sitk.sitkFloat32) * (-2.5 - c), str(other / name))
    segs = []
    for inp in (clean, other):
        out = tmp_path / f"pred_{inp.name}"
        run([bin_path("nnUNetv2_predict"), "-i", str(inp), "-o", str(out), "-d", str(dataset_id), "-c", CONFIGURATION,
             "-p", PLANS, "-tr", TRAINED, "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"], env)
        segs.append(sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz"))))
    assert np.array_equal(segs[0], segs[1])

    # A zoo made of copies of this model under the 15 base names (each checkpoint names its own class).
    for name in zoo_trainers("nnUNetTrainerDedicated_{subset}").values():
        target = os.path.join(os.path.dirname(folder), folder.split(os.sep)[-1].replace(TRAINED, name))
        shutil.copytree(folder, target, dirs_exist_ok=True)
        ckpt = os.path.join(target, "fold_0", "checkpoint_final.pth")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state["trainer_name"] = name
        torch.save(state, ckpt)
    out = tmp_path / "bench"
    run([bin_path("mstkd_benchmark"), "-d", str(dataset_id), "-c", CONFIGURATION, "-f", "0", "-p", PLANS,
         "-tr", TRAINED, "--dedicated", "nnUNetTrainerDedicated_{subset}", "-o", str(out), "-device", "cpu",
         "--disable_tta", "--disable_progress_bar"], env)
    summary = json.load(open(out / "summary.json"))
    assert summary["models"] == [TRAINED, DEDICATED_ROW]
    zoo, single = summary["results"][DEDICATED_ROW], summary["results"][TRAINED]
    assert len([s for s in zoo if s != "Avg"]) == 15
    # T1ce alone is scored by the T1ce model: the zoo's cell is the single model's, to the digit
    assert zoo["T1Gd"] == single["T1Gd"]
    # the single T1ce model sees only zeros without T1ce; the zoo's model for FLAIR sees FLAIR
    assert zoo["FL"] != single["FL"]
    assert single["FL"] == single["T1"] == single["T2"]
    assert "--dedicated 'nnUNetTrainerDedicated_{subset}'" in summary["benchmark"]["command"]


def test_an_incomplete_zoo_is_skipped_naming_the_commands(planned_dataset, tmp_path):
    root, dataset_id = planned_dataset
    proc = subprocess.run([bin_path("mstkd_benchmark"), "-d", str(dataset_id), "-c", CONFIGURATION, "-f", "0",
                           "-p", PLANS, "--dedicated", "nnUNetTrainerDedicated_{subset}_10ep25it", "-o",
                           str(tmp_path / "b"), "-device", "cpu"], env=nnunet_env(root), capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stderr
    assert "dedicated per subset" in proc.stderr and "15 subset(s)" in proc.stderr
    assert "-tr nnUNetTrainerDedicated_T1ce_FLAIR_10ep25it" in proc.stderr
