"""``-pretrained_weights`` into an MST-KD student: the conversion of a plain nnU-Net checkpoint, and the rule."""
from __future__ import annotations

import os
import re

import pytest
import torch

from nnunetv2_mstkd.training.pretrained import main, merge_pretrained

from conftest import CONFIGURATION, PLANS, train_env

STUDENT = "nnUNetTrainerMSTKD_1ep10it"


def test_merge_takes_source_then_fill_then_target():
    source = {"enc.w": torch.ones(2), "dec.seg_layers.0.w": torch.ones(3), "old.w": torch.ones(1)}
    target = {"enc.w": torch.zeros(2), "dec.seg_layers.0.w": torch.zeros(4), "transformers.0.w": torch.zeros(2),
              "transformers.1.w": torch.zeros(2)}
    fill = {"transformers.0.w": torch.full((2,), 5.0), "transformers.1.w": torch.ones(3)}  # second: wrong shape
    merged, report = merge_pretrained(source, target, fill)
    assert list(merged) == list(target)
    assert merged["enc.w"].tolist() == [1, 1] and merged["transformers.0.w"].tolist() == [5, 5]
    # a segmentation layer of another shape is not an error (nnU-Net never transfers those): the target's stays
    assert merged["dec.seg_layers.0.w"].tolist() == [0] * 4 and merged["transformers.1.w"].tolist() == [0, 0]
    assert report == {"from_source": ["enc.w"], "from_fill": ["transformers.0.w"],
                      "from_target": ["dec.seg_layers.0.w", "transformers.1.w"], "unused": ["old.w"]}
    with pytest.raises(ValueError, match=r"enc.w: shape \(3,\) in the pretrained checkpoint, \(2,\) in the network"):
        merge_pretrained({"enc.w": torch.ones(3)}, target)


def test_a_plain_checkpoint_converted_loads_through_nnunets_own_path(train_model, planned_dataset, monkeypatch,
                                                                    tmp_path, capsys):
    root, dataset_id = planned_dataset
    plain = os.path.join(train_model("nnUNetTrainer_5ep25it"), "fold_0", "checkpoint_final.pth")
    teacher = os.path.join(train_model("nnUNetTrainerMSTKD_noKD_1ep10it"), "fold_0", "checkpoint_final.pth")
    converted = str(tmp_path / "pretrained_mstkd.pth")
    for k, v in train_env(root).items():
        monkeypatch.setenv(k, v)
    # mstkd_pretrained, in this process
    assert main(["-i", plain, "-o", converted, "-d", str(dataset_id), "-c", CONFIGURATION, "-p", PLANS,
                 "-tr", STUDENT]) == 0
    assert "-pretrained_weights " + converted in capsys.readouterr().out
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    trainer = get_trainer_from_args(str(dataset_id), CONFIGURATION, 0, STUDENT, PLANS, device=torch.device("cpu"))
    trainer.output_folder, trainer.log_file = str(tmp_path), str(tmp_path / "log.txt")
    # unconverted, nnU-Net's key check refuses the transformer keys (the student has already loaded its teacher)
    with pytest.raises(AssertionError, match="transformers"):
        maybe_load_checkpoint(trainer, False, False, plain)
    maybe_load_checkpoint(trainer, False, False, converted)  # what nnUNetv2_train -pretrained_weights runs
    weights = trainer.network.state_dict()
    plain_weights = torch.load(plain, map_location="cpu", weights_only=False)["network_weights"]
    teacher_weights = torch.load(teacher, map_location="cpu", weights_only=False)["network_weights"]
    for key, value in weights.items():
        if ".seg_layers." in key:  # nnU-Net never transfers these: they stay the teacher's
            assert torch.equal(value, teacher_weights[key]), key
        elif key.startswith("transformers."):  # fresh blocks, zero output projection: identity
            assert not re.fullmatch(r"transformers\.\d+\.proj\.(weight|bias)", key) or not value.any(), key
        else:
            assert torch.equal(value, plain_weights[key]), key
    differ = trainer.report_start_weights()
    assert differ and not any(".seg_layers." in k for k in differ)
    assert f"{len(differ)} of {len(weights)} weight tensors differ from the teacher's" in open(trainer.log_file).read()
    # the student then computes what the plain network computes (given the same segmentation layers)
    net = nnUNetTrainer.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, trainer.num_input_channels,
        trainer.label_manager.num_segmentation_heads, False)
    net.load_state_dict({k: weights[k] if ".seg_layers." in k else plain_weights[k] for k in net.state_dict()})
    trainer.set_deep_supervision_enabled(False)
    x = torch.randn(1, trainer.num_input_channels, *trainer.configuration_manager.patch_size)
    with torch.no_grad():
        torch.testing.assert_close(trainer.network.eval()(x), net.eval()(x), rtol=1e-4, atol=1e-4)
    # a teacher checkpoint has every key: nnU-Net's loader takes it as it is
    maybe_load_checkpoint(trainer, False, False, teacher)
    assert trainer.report_start_weights() == []
