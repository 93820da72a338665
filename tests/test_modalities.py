import numpy as np
import pytest
import torch

from nnunetv2_mstkd.modalities import (
    all_subsets,
    paper_subsets,
    resolve_channels,
    subset_label,
    zero_absent_channels,
)

NAMES = ["T1", "T1ce", "T2", "FLAIR"]


@pytest.mark.parametrize("requested, expected", [
    (["t1gd"], [1]), (["T1c"], [1]), (["T1CE"], [1]), (["t2f"], [3]), (["Flair"], [3]),
    (["t1n"], [0]), (["T2w"], [2]), (["2", 0], [0, 2]), (["FLAIR", "flair", 3], [3]),
])
def test_resolve_channels_names_aliases_indices(requested, expected):
    assert resolve_channels(requested, NAMES) == expected


def test_resolve_channels_uses_dataset_names_first():
    assert resolve_channels(["dwi"], ["dwi", "adc"]) == [0]


@pytest.mark.parametrize("bad", ["T3", "7", "-1"])
def test_resolve_channels_errors_list_valid_channels(bad):
    with pytest.raises(ValueError, match="Valid channels: 0=T1, 1=T1ce, 2=T2, 3=FLAIR"):
        resolve_channels([bad], NAMES)


def test_subsets_count_and_paper_order():
    assert len(all_subsets(4)) == 15 and all(len(s) > 0 for s in all_subsets(4))
    labels = [subset_label(s, NAMES) for s in paper_subsets(NAMES)]
    assert labels == ["T2", "T1Gd", "T1", "FL", "T1Gd+T2", "T1+T1Gd", "FL+T1", "T1+T2", "FL+T2", "FL+T1Gd",
                      "FL+T1+T1Gd", "FL+T1+T2", "FL+T1Gd+T2", "T1+T1Gd+T2", "All"]
    assert sorted(paper_subsets(NAMES)) == sorted(all_subsets(4))


def test_paper_subsets_follow_the_dataset_channel_order():
    shuffled = ["flair", "t1c", "t2w", "t1n"]
    assert paper_subsets(shuffled)[0] == (2,) and paper_subsets(shuffled)[3] == (0,)


def test_zero_absent_channels_torch_batch_and_numpy_case():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3) + 1
    present = torch.tensor([[True, False, True, True], [False, False, False, True]])
    y = zero_absent_channels(x, present)
    assert torch.equal(y[0, 1], torch.zeros(3)) and torch.equal(y[0, 0], x[0, 0])
    assert torch.count_nonzero(y[1, :3]) == 0 and torch.equal(y[1, 3], x[1, 3])
    a = np.ones((4, 2, 2), dtype=np.float32)
    b = zero_absent_channels(a, np.array([1, 0, 0, 0], dtype=bool))
    assert b.dtype == np.float32 and b[0].sum() == 4 and b[1:].sum() == 0


def test_zero_absent_channels_refuses_all_absent_and_bad_shapes():
    with pytest.raises(ValueError, match="at least one modality"):
        zero_absent_channels(torch.ones(1, 4, 2), torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not match"):
        zero_absent_channels(torch.ones(1, 3, 2), torch.ones(1, 4, dtype=torch.bool))
