import json
import subprocess

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mstkd.plans.apply_preset import apply_preset_to_plans, load_preset

from conftest import bin_path, nnunet_env


def test_preset_plans_are_small_and_share_preprocessed_data(planned_dataset):
    root, dataset_id = planned_dataset
    folder = next((root / "preprocessed").glob(f"Dataset{dataset_id}_*"))
    src = json.loads((folder / "nnUNetPlans.json").read_text())
    cpu = json.loads((folder / "nnUNetPlansCPU.json").read_text())
    assert cpu["plans_name"] == "nnUNetPlansCPU"
    conf, src_conf = cpu["configurations"]["3d_fullres"], src["configurations"]["3d_fullres"]
    assert conf["patch_size"] == [32, 32, 32] and conf["batch_size"] == 2
    kw = conf["architecture"]["arch_kwargs"]
    assert kw["n_stages"] == 3 and kw["features_per_stage"] == [16, 32, 64]
    assert kw["strides"] == [[1, 1, 1], [2, 2, 2], [2, 2, 2]] and len(kw["n_conv_per_stage_decoder"]) == 2
    assert conf["data_identifier"] == src_conf["data_identifier"]
    assert (folder / conf["data_identifier"]).is_dir()
    cm = PlansManager(cpu).get_configuration("3d_fullres")
    net = cm.network_arch_class_name
    assert net.endswith("PlainConvUNet")


def test_preset_2d_configuration_builds_a_working_network():
    plans = {"plans_name": "nnUNetPlans", "configurations": {"2d": {
        "data_identifier": "nnUNetPlans_2d", "patch_size": [128, 128], "batch_size": 12, "spacing": [1.0, 1.0],
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 512, 512],
                                         "conv_op": "torch.nn.modules.conv.Conv2d",
                                         "kernel_sizes": [[3, 3]] * 6, "strides": [[1, 1]] + [[2, 2]] * 5,
                                         "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5,
                                         "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                                         "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
                                         "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                                         "nonlin_kwargs": {"inplace": True}},
                         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}}}
    out = apply_preset_to_plans(plans, load_preset("cpu"))
    conf = out["configurations"]["2d"]
    assert conf["patch_size"] == [64, 64] and conf["architecture"]["arch_kwargs"]["n_stages"] == 4
    assert plans["configurations"]["2d"]["patch_size"] == [128, 128], "the source plans must not change"
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    cm = PlansManager(out).get_configuration("2d")
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, 4, 3, deep_supervision=False)
    assert net(torch.zeros(1, 4, 64, 64)).shape == (1, 3, 64, 64)


def test_bad_preset_patch_is_refused():
    preset = {"plans_identifier": "x", "configurations": {"2d": {"patch_size": [60, 64], "batch_size": 2,
                                                                 "features_per_stage": [8, 16, 32, 64]}}}
    plans = {"configurations": {"2d": {"architecture": {"arch_kwargs": {"kernel_sizes": [[3, 3]] * 4}}}}}
    with pytest.raises(ValueError, match="not divisible"):
        apply_preset_to_plans(plans, preset)


def test_preset_for_an_inheriting_configuration_is_refused_by_name():
    plans = {"plans_name": "nnUNetPlans", "configurations": {
        "3d_fullres": {"architecture": {"arch_kwargs": {"kernel_sizes": [[3, 3, 3]] * 4}}},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}}}
    preset = {"plans_identifier": "x", "configurations": {"3d_cascade_fullres": {
        "patch_size": [32, 32, 32], "batch_size": 2, "features_per_stage": [16, 32, 64]}}}
    with pytest.raises(ValueError, match="3d_cascade_fullres of plans nnUNetPlans inherits from '3d_fullres'"):
        apply_preset_to_plans(plans, preset)


def test_applying_before_fingerprinting_names_the_nnunet_command(tmp_path):
    from nnunetv2_mstkd.data.synthetic import generate_dataset

    env = nnunet_env(tmp_path)
    generate_dataset(55, 2, size=32, seed=0, raw_dir=env["nnUNet_raw"])
    proc = subprocess.run([bin_path("mstkd_apply_plans"), "-d", "55"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "nnUNetv2_plan_and_preprocess -d 55" in proc.stderr
    assert not list((tmp_path / "preprocessed").glob("**/*.json"))
