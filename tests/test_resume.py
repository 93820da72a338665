"""An interrupted MST-KD run resumes with ``nnUNetv2_train --c``: student, discriminator, optimisers and epoch."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import CONFIGURATION, PLANS, bin_path, run, train_env

pytestmark = pytest.mark.e2e
STUDENT = "nnUNetTrainerMSTKD_2ep10it"


def _wait_for_second_epoch(proc: subprocess.Popen, fold_dir: str, timeout: float = 600) -> None:
    """Block until the run has saved epoch 0's checkpoint and started epoch 1."""
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted:\n{proc.stdout.read()[-4000:]}")
        logs = glob.glob(os.path.join(fold_dir, "training_log_*.txt"))
        if any("Epoch 1" in open(p).read() for p in logs):
            return
        time.sleep(0.2)
    pytest.fail("epoch 1 never started")


def _assert_state_equal(a, b, what):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _assert_state_equal(a[k], b[k], f"{what}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_state_equal(x, y, f"{what}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a.cpu(), b.cpu()), what
    else:
        assert a == b, what


def test_interrupted_run_resumes_with_every_state_restored(train_model, planned_dataset, monkeypatch):
    root, dataset_id = planned_dataset
    teacher = train_model("nnUNetTrainerMSTKD_noKD_1ep10it")
    env = train_env(root, MSTKD_TEACHER=teacher)
    results = next((root / "results").glob(f"Dataset{dataset_id:03d}_*"))
    fold_dir = str(results / f"{STUDENT}__{PLANS}__{CONFIGURATION}" / "fold_0")
    cmd = [bin_path("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-p", PLANS, "-tr", STUDENT,
           "-device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        _wait_for_second_epoch(proc, fold_dir)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    latest = os.path.join(fold_dir, "checkpoint_latest.pth")
    saved = torch.load(latest, map_location="cpu", weights_only=False)
    assert saved["current_epoch"] == 1
    assert not os.path.exists(os.path.join(fold_dir, "checkpoint_final.pth"))
    assert not glob.glob(os.path.join(fold_dir, "*.tmp")), "no half-written checkpoint may stay behind"

    # What --c restores equals what was saved.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(dataset_id), CONFIGURATION, 0, STUDENT, PLANS, continue_training=True,
                                    device=torch.device("cpu"))
    trainer.load_checkpoint(latest)
    assert trainer.current_epoch == 1
    _assert_state_equal(trainer.network.state_dict(), saved["network_weights"], "network")
    _assert_state_equal(trainer.optimizer.state_dict(), saved["optimizer_state"], "optimizer")
    _assert_state_equal(trainer.discriminator.state_dict(), saved["mstkd"]["discriminator"], "discriminator")
    _assert_state_equal(trainer.discriminator_optimizer.state_dict(), saved["mstkd"]["discriminator_optimizer"],
                        "discriminator optimizer")
    assert trainer.logger.get_value("loss_mstkd", step=None) == saved["logging"]["loss_mstkd"]
    assert trainer.teacher is not None and not any(p.requires_grad for p in trainer.teacher.parameters())

    # And the stock command finishes the run from there.
    run(cmd + ["--c"], env, timeout=900)
    final = torch.load(os.path.join(fold_dir, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 2
    assert len(final["logging"]["loss_mstkd"]) == 2 and final["logging"]["loss_mstkd"][0] == \
        saved["logging"]["loss_mstkd"][0]
