import numpy as np
import pytest
import torch

from nnunetv2_mstkd.modalities import zero_absent_channels
from nnunetv2_mstkd.training.modality_dropout import drop_modalities, sample_presence, subset_table


def test_uniform_over_the_15_subsets_never_empty():
    g = torch.Generator().manual_seed(0)
    m = sample_presence(15000, 4, generator=g)
    assert m.any(1).all()
    codes = (m.long() * torch.tensor([1, 2, 4, 8])).sum(1)
    counts = np.bincount(codes.numpy(), minlength=16)
    assert counts[0] == 0
    # 1000 expected per subset; 5 standard deviations is about 150
    assert np.all(np.abs(counts[1:] - 1000) < 150), counts


def test_configured_subsets_and_weights():
    g = torch.Generator().manual_seed(1)
    m = sample_presence(2000, 4, subsets=[(0, 1, 2, 3), (1,)], weights=[3, 1], generator=g)
    full = m.all(1).float().mean().item()
    assert 0.7 < full < 0.8
    assert set(map(tuple, m.int().tolist())) == {(1, 1, 1, 1), (0, 1, 0, 0)}


@pytest.mark.parametrize("subsets, weights, match", [
    ([()], None, "at least one channel"), ([(4,)], None, "out of range"), ([(0,), (1,)], [1], "weights"),
])
def test_bad_configuration(subsets, weights, match):
    with pytest.raises(ValueError, match=match):
        sample_presence(2, 4, subsets=subsets, weights=weights)


def test_drop_modalities_is_the_inference_masking():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5, 5)
    y, present = drop_modalities(x)
    assert torch.equal(y, zero_absent_channels(x, present))
    assert present.shape == (6, 4) and present.any(1).all()
    assert torch.equal(subset_table(2), torch.tensor([[True, False], [False, True], [True, True]]))


def _dropout_trainer(subsets=None):
    """What ModalityDropoutMixin reads of an nnU-Net trainer: dataset.json and the subsets."""
    from nnunetv2_mstkd.training.modality_dropout import ModalityDropoutMixin

    trainer = ModalityDropoutMixin()
    trainer.dataset_json = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}}
    trainer.modality_subsets = subsets
    return trainer


def test_a_cascade_s_previous_stage_channels_are_never_dropped():
    """Full-resolution cascade input: 4 image channels, then 3 one-hot channels of the previous stage."""
    trainer = _dropout_trainer(subsets=((3,),))  # FLAIR only, so every image channel but the last is dropped
    data = torch.rand(5, 7, 4, 4, 4) + 1
    out, present = trainer.drop_modalities(data)
    assert present.shape == (5, 4) and present[:, 3].all() and not present[:, :3].any()
    assert torch.count_nonzero(out[:, :3]) == 0 and torch.equal(out[:, 3], data[:, 3])
    assert torch.equal(out[:, 4:], data[:, 4:])  # the previous stage's segmentation is untouched
    plain = torch.rand(5, 4, 4, 4, 4) + 1  # a plain configuration: the same rule on four channels
    out, present = trainer.drop_modalities(plain)
    assert out.shape == plain.shape and torch.count_nonzero(out[:, :3]) == 0
