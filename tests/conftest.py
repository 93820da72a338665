"""Shared fixtures: one small synthetic dataset, planned by the real nnU-Net commands, per test session."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnunetv2_mstkd.env import with_trainers_dir

E2E_DATASET_ID = 987
E2E_CASES = 8
E2E_SIZE = 32


def bin_path(name: str) -> str:
    """A console script of this environment (next to the running Python)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def nnunet_env(root, ext_trainer: bool = True, **extra) -> dict:
    """Environment for nnU-Net commands with its three folders under ``root`` and CPU-friendly settings."""
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_def_n_proc="1", OMP_NUM_THREADS="2",
               PYTHONUNBUFFERED="1")
    env.pop("nnUNet_n_proc_DA", None)
    env.pop("MSTKD_TEACHER", None)
    if ext_trainer:
        env["nnUNet_extTrainer"] = with_trainers_dir(env.get("nnUNet_extTrainer"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd: list[str], env: dict, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it exits non-zero."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
                    f"--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def train_env(root, **extra) -> dict:
    """Environment for ``nnUNetv2_train`` on CPU (no augmentation worker processes)."""
    return nnunet_env(root, nnUNet_n_proc_DA=0, **extra)


@pytest.fixture(scope="session")
def planned_dataset(tmp_path_factory):
    """``(root, dataset_id)``: synthetic dataset, ``nnUNetv2_plan_and_preprocess``, then ``mstkd_apply_plans``."""
    from nnunetv2_mstkd.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("nnunet")
    env = nnunet_env(root)
    generate_dataset(E2E_DATASET_ID, E2E_CASES, num_test_cases=2, size=E2E_SIZE, seed=3, raw_dir=env["nnUNet_raw"])
    run([bin_path("nnUNetv2_plan_and_preprocess"), "-d", str(E2E_DATASET_ID), "-c", "3d_fullres", "-np", "1",
         "-npfp", "1", "--verify_dataset_integrity"], env)
    run([bin_path("mstkd_apply_plans"), "-d", str(E2E_DATASET_ID)], env)
    return root, E2E_DATASET_ID


CONFIGURATION = "3d_fullres"
PLANS = "nnUNetPlansCPU"


@pytest.fixture(scope="session")
def train_model(planned_dataset):
    """Factory ``train_model(trainer) -> model folder``: trains fold 0 once per session via ``nnUNetv2_train``."""
    root, dataset_id = planned_dataset
    done: dict[str, str] = {}

    def _train(trainer: str, **extra_env) -> str:
        if trainer not in done:
            run([bin_path("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-p", PLANS, "-tr", trainer,
                 "-device", "cpu"], train_env(root, **extra_env), timeout=900)
            dataset_folder = next((root / "results").glob(f"Dataset{dataset_id:03d}_*"))
            folder = dataset_folder / f"{trainer}__{PLANS}__{CONFIGURATION}"
            assert (folder / "fold_0" / "checkpoint_final.pth").is_file()
            done[trainer] = str(folder)
        return done[trainer]

    return _train


def pytest_collection_modifyitems(config, items):
    """Every test that plans or trains through the real nnU-Net commands counts as ``e2e``."""
    for item in items:
        if {"planned_dataset", "train_model"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
