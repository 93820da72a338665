import json
import subprocess
import sys

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from conftest import bin_path, nnunet_env

# What the published CPU results were trained with (3d_fullres of nnUNetPlansCPU on the synthetic data).
PUBLISHED_3D = {"n_stages": 3, "features_per_stage": [16, 32, 64], "kernel_sizes": [[3, 3, 3]] * 3,
                "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2]}


def test_cpu_plans_give_the_published_network_and_share_preprocessed_data(planned_dataset):
    root, dataset_id = planned_dataset
    folder = next((root / "preprocessed").glob(f"Dataset{dataset_id}_*"))
    src = json.loads((folder / "nnUNetPlans.json").read_text())
    cpu = json.loads((folder / "nnUNetPlansCPU.json").read_text())
    assert cpu["plans_name"] == "nnUNetPlansCPU" and cpu["experiment_planner_used"] == "nnUNetPlannerCPU"
    assert sorted(cpu["configurations"]) == ["2d", "3d_fullres"]
    conf, src_conf = cpu["configurations"]["3d_fullres"], src["configurations"]["3d_fullres"]
    assert conf["patch_size"] == [32, 32, 32] and conf["batch_size"] == 2
    kw = conf["architecture"]["arch_kwargs"]
    assert {k: kw[k] for k in PUBLISHED_3D} == PUBLISHED_3D
    # everything but the network's size is nnU-Net's default planning
    for key in ("spacing", "normalization_schemes", "use_mask_for_norm", "median_image_size_in_voxels",
                "batch_dice", "data_identifier"):
        assert conf[key] == src_conf[key], key
    assert {k: v for k, v in kw.items() if k not in PUBLISHED_3D} == \
        {k: v for k, v in src_conf["architecture"]["arch_kwargs"].items() if k not in PUBLISHED_3D}
    assert (folder / conf["data_identifier"]).is_dir()
    two_d = cpu["configurations"]["2d"]
    assert two_d["patch_size"] == [64, 64] and two_d["batch_size"] == 4
    assert two_d["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64, 128]
    assert PlansManager(cpu).get_configuration("3d_fullres").network_arch_class_name.endswith("PlainConvUNet")


PLAN_ANISOTROPIC = """
import json, sys
from nnunetv2_mstkd.plans.cpu_planner import nnUNetPlannerCPU
p = nnUNetPlannerCPU(int(sys.argv[1]))
plan = p.get_plans_for_configuration([3.0, 1.0, 1.0], (40, 200, 200), 'x', 1e8, {})
print(json.dumps({k: plan[k] for k in ('patch_size', 'batch_size', 'median_image_size_in_voxels')}
                 | {k: plan['architecture']['arch_kwargs'][k] for k in ('kernel_sizes', 'strides')}, default=int))
"""


def test_cpu_planner_uses_nnunets_rules_for_anisotropic_spacing_and_refuses_a_broken_configuration(tmp_path):
    from nnunetv2_mstkd.data.synthetic import generate_dataset

    env = nnunet_env(tmp_path)
    generate_dataset(55, 2, size=32, seed=0, raw_dir=env["nnUNet_raw"])
    proc = subprocess.run([bin_path("mstkd_apply_plans"), "-d", "55"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "nnUNetv2_plan_and_preprocess -d 55" in proc.stderr and "fingerprinted" in proc.stderr

    subprocess.run([bin_path("nnUNetv2_extract_fingerprint"), "-d", "55", "-np", "1"], env=env, check=True,
                   capture_output=True)
    out = subprocess.run([sys.executable, "-c", PLAN_ANISOTROPIC, "55"], env=env, capture_output=True, text=True,
                         check=True).stdout
    plan = json.loads(out.strip().splitlines()[-1])
    # nnU-Net's topology for 3 mm slices: no pooling and 1x3x3 kernels along the coarse axis at first
    assert plan["patch_size"] == [32, 32, 32] and plan["batch_size"] == 2
    assert plan["kernel_sizes"][0] == [1, 3, 3] and plan["strides"][1] == [1, 2, 2]
    assert plan["median_image_size_in_voxels"] == [40, 200, 200]

    plans_file = tmp_path / "preprocessed" / "Dataset055_SynthBraTS" / "nnUNetPlansCPU.json"
    broken = {"configurations": {"3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}}}
    plans_file.write_text(json.dumps(broken))
    proc = subprocess.run([bin_path("mstkd_apply_plans"), "-d", "55"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "'3d_cascade_fullres'" in proc.stderr and "previous_stage '3d_lowres'" in proc.stderr
    assert json.loads(plans_file.read_text()) == broken, "a refused plan must leave the existing file as it was"
