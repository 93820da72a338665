"""The GPU check script, in its CPU dry-run mode, so that it cannot rot between GPU sessions."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.e2e


def test_gpu_check_dry_run_writes_its_report(planned_dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    out = tmp_path / "gpu_check.md"
    # a copy of the session's planned dataset: the script makes its own only when the work folder lacks one
    root, dataset_id = planned_dataset
    for folder in ("raw", "preprocessed"):
        source = next((root / folder).glob(f"Dataset{dataset_id:03d}_*"))
        shutil.copytree(source, tmp_path / "work" / folder / source.name)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), "--dry-run",
                           "--work", str(tmp_path / "work"), "--out", str(out), "--dataset", str(dataset_id)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    for trainer in ("nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD_paper", "nnUNetTrainerModalityDropout"):
        assert f"| {trainer} | off | 32×32×32 | 2 |" in text
    assert "| NO |" not in text and "Student / teacher trainer, compile off" in text
    # nnU-Net's residual-encoder preset (CPU-sized in the dry run): the same three trainers
    resenc = text.split("Residual-encoder preset, plans nnUNetResEncUNetPlansCPU:")[1]
    for trainer in ("nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD_paper"):  # the dry run times these two
        assert f"| {trainer} | off | 32×32×32 | 2 |" in resenc
    assert "the frozen teacher's forward alone" in text
    # on the CPU both predictors are deterministic: no voxel differs, run to run or between them
    assert "nnUNetv2_predict against itself (second run) 0, mstkd_predict against nnUNetv2_predict 0: within" in text
    assert "-tr nnUNetTrainerMSTKD_1ep10it` with nnUNet_compile false" in text
    assert "2 cases predicted without T1ce" in text and "FAILED" not in text
