"""One MST-KD training step, in process: who sees what, and who learns."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from conftest import CONFIGURATION, PLANS, train_env

pytestmark = pytest.mark.e2e


@pytest.fixture()
def student(train_model, planned_dataset, monkeypatch):
    root, dataset_id = planned_dataset
    # the paper formulation's student; its teacher here is the default teacher trainer (the same network),
    # named by MSTKD_TEACHER: trained anyway by other tests, so the session trains one teacher less
    teacher_folder = train_model("nnUNetTrainerMSTKD_noKD_1ep10it")
    for k, v in train_env(root, MSTKD_TEACHER=teacher_folder).items():
        monkeypatch.setenv(k, v)
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(dataset_id), CONFIGURATION, 0, "nnUNetTrainerMSTKD_paper_1ep10it", PLANS,
                                    device=torch.device("cpu"))
    trainer.initialize()
    trainer.ensure_teacher()  # initialize() skips it when an earlier test finished this fold
    return trainer, teacher_folder


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(2, 4, 32, 32, 32, generator=g)
    target = [(torch.rand(2, 3, s, s, s, generator=g) > 0.7).float() for s in (32, 16, 8)]
    return {"data": data, "target": target}


def test_teacher_sees_everything_student_sees_its_subset_and_only_the_student_learns(student):
    trainer, teacher_folder = student
    assert os.path.join(os.environ["nnUNet_results"], trainer.teacher_info.checkpoint).startswith(teacher_folder)
    assert trainer.teacher_info.relative_to == "nnUNet_results" and trainer.teacher_info.fold == 0
    assert all(id(p) not in {id(q) for q in trainer.network.parameters()} for p in trainer.teacher.parameters())
    seen = {}
    trainer.teacher.register_forward_pre_hook(lambda m, args: seen.__setitem__("teacher", args[0].clone()))
    trainer.network.register_forward_pre_hook(lambda m, args: seen.__setitem__("student", args[0].clone()))
    # forward_with_aux does not pass through forward hooks; watch the encoders instead.
    trainer.teacher.encoder.register_forward_pre_hook(lambda m, args: seen.__setitem__("teacher", args[0].clone()))
    trainer.network.encoder.register_forward_pre_hook(lambda m, args: seen.__setitem__("student", args[0].clone()))
    trainer.modality_subsets = ((3,),)  # FLAIR only, for this instance

    teacher_before = copy.deepcopy(trainer.teacher.state_dict())
    student_before = copy.deepcopy(trainer.network.state_dict())
    disc_before = copy.deepcopy(trainer.discriminator.state_dict())
    batch = _batch()
    out = trainer.train_step(batch)

    assert torch.equal(seen["teacher"], batch["data"])
    assert torch.count_nonzero(seen["student"][:, :3]) == 0 and torch.equal(seen["student"][:, 3], batch["data"][:, 3])
    for k, v in trainer.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f"teacher changed: {k}"
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())
    assert any(not torch.equal(v, student_before[k]) for k, v in trainer.network.state_dict().items())
    assert any(not torch.equal(v, disc_before[k]) for k, v in trainer.discriminator.state_dict().items())
    expected_total = out["loss_seg"] + out["loss_mstkd"] + out["loss_dmld"] + out["loss_gsme"]
    assert out["loss"] == pytest.approx(expected_total, rel=1e-5)
    for key in ("loss_att", "loss_feat", "loss_prob", "loss_lskd", "loss_gram", "loss_adv", "loss_disc"):
        assert key in out and float(out[key]) >= 0 and torch.isfinite(torch.tensor(out[key]))


def test_weights_follow_the_class_attributes(student):
    trainer, _ = student
    w = trainer.distillation_weights()
    assert (w.att, w.feat, w.prob, w.lskd, w.gram, w.adv, w.temperature, w.ramp_fraction) == (
        trainer.lambda_att, trainer.lambda_feat, trainer.lambda_prob, trainer.lambda_lskd, trainer.lambda_gram,
        trainer.lambda_adv, 7.0, 0.2)


def test_compiled_forwards_give_the_eager_loss(student, monkeypatch):
    """With nnUNet_compile the student's and the teacher's aux forwards are compiled (here with a CPU-quick backend)."""
    trainer, _ = student
    batch = _batch(3)
    trainer.modality_subsets = ((0, 1, 2, 3),)  # no random dropout: both steps see the same input
    state = copy.deepcopy(trainer.network.state_dict())
    disc = copy.deepcopy(trainer.discriminator.state_dict())
    eager = trainer.train_step(batch)
    trainer.network.load_state_dict(state)
    trainer.discriminator.load_state_dict(disc)
    monkeypatch.setattr(type(trainer), "_do_i_compile", lambda self: True)
    monkeypatch.setattr(type(trainer), "compile_backend", "aot_eager")
    compiled = trainer.train_step(batch)
    assert set(trainer._compiled_forwards) == {"student", "teacher"}
    for key in ("loss_seg", "loss_mstkd", "loss_dmld", "loss_gsme"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-6), key


def test_without_the_attention_term_neither_network_computes_attention_maps(student):
    """Only the attention term reads the maps: the _noMSTKD ablation keeps the fused kernel in both networks."""
    full, _ = student
    assert full.teacher.aux_attentions and full.network.aux_attentions
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(full.plans_manager.dataset_name, CONFIGURATION, 0,
                                    "nnUNetTrainerMSTKD_noMSTKD_1ep10it", PLANS, device=torch.device("cpu"))
    trainer.initialize()
    trainer.ensure_teacher()
    assert not trainer.teacher.aux_attentions and not trainer.network.aux_attentions
    trainer.modality_subsets = ((3,),)  # a student initialised from the teacher would match it on the full set
    out = trainer.train_step(_batch(5))
    assert "loss_att" not in out and float(out["loss_dmld"]) > 0 and torch.isfinite(torch.tensor(out["loss"]))


@pytest.mark.parametrize("trainer_name, present, absent", [
    ("nnUNetTrainerMSTKD_noMSTKD_1ep10it", ["loss_dmld", "loss_gram", "loss_disc"], ["loss_att", "loss_feat"]),
    ("nnUNetTrainerMSTKD_noDMLD_1ep10it", ["loss_att", "loss_gram"], ["loss_prob", "loss_lskd"]),
    ("nnUNetTrainerMSTKD_noGSME_1ep10it", ["loss_att", "loss_prob"], ["loss_gram", "loss_adv", "loss_disc"]),
])
def test_each_ablation_steps_without_its_family(student, trainer_name, present, absent):
    """The paper's ablations, one step each as nnU-Net sets them up: their family's terms are not computed."""
    full, _ = student
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(full.plans_manager.dataset_name, CONFIGURATION, 0, trainer_name, PLANS,
                                    device=torch.device("cpu"))
    trainer.initialize()
    trainer.ensure_teacher()
    assert any(k.startswith("transformers.") for k in trainer.network.state_dict())
    trainer.modality_subsets = ((3,),)
    out = trainer.train_step(_batch(7))
    for key in present:
        assert key in out and np.isfinite(out[key]), key
    for key in absent:
        assert key not in out, key
