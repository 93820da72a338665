"""mstkd_convert to-brats: nnU-Net predictions back to the challenge labels."""
from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_mstkd.data.convert import (
    SCHEMES,
    UnconvertedFilesError,
    convert_predictions_to_brats,
    to_brats_labels,
)
from nnunetv2_mstkd.data.convert.case_io import relabel
from nnunetv2_mstkd.data.convert.cli import main

SPACING = (1.0, 0.8, 2.0)
ORIGIN = (3.0, -4.0, 12.5)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # LPS <-> RAS flip


def write_prediction(path, array):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path), useCompression=True)


def prediction(seed):
    """A 16 x 16 x 12 label map holding every nnU-Net label 0-3."""
    return np.random.default_rng(seed).integers(0, 4, size=(12, 16, 16))


@pytest.mark.parametrize("convention, expected", [("2021", [0, 2, 1, 4]), ("gli", [0, 2, 1, 3])])
def test_label_mapping_by_hand(convention, expected):
    seg = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(to_brats_labels(seg, convention), np.array(expected).reshape(2, 2))
    assert to_brats_labels(seg, convention).dtype == np.uint8


def test_unexpected_values_and_convention_are_refused():
    with pytest.raises(ValueError, match=r"case_7\.nii\.gz contains values \[4, 9\]"):
        to_brats_labels(np.array([0, 3, 4, 9]), "2021", name="case_7.nii.gz")
    with pytest.raises(ValueError, match="use one of 2021, gli"):
        to_brats_labels(np.array([0, 1]), "2019")


@pytest.mark.parametrize("scheme", ["brats2021", "brats-gli", "fets"])
def test_round_trip_restores_challenge_labels(scheme):
    s = SCHEMES[scheme]
    original = np.array(sorted(s.label_map))
    back = to_brats_labels(relabel("case", "seg.nii.gz", original, s.label_map), s.convention)
    expected = np.where(np.isin(original, list(s.background_labels)), 0, original)  # the cavity stays background
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("convention, lut", [("2021", [0, 2, 1, 4]), ("gli", [0, 2, 1, 3])])
def test_folder_conversion_keeps_names_and_geometry(tmp_path, convention, lut):
    pred = tmp_path / "pred"
    pred.mkdir()
    arrays = {"BraTS2021_00001.nii.gz": prediction(1), "BraTS-GLI-00002-000.nii.gz": prediction(2)}
    for name, array in arrays.items():
        write_prediction(pred / name, array)
    (pred / "plans.json").write_text("{}")

    written = convert_predictions_to_brats(str(pred), str(tmp_path / "out"), convention)
    assert sorted(os.path.basename(w) for w in written) == sorted(arrays)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(arrays)
    for name, array in arrays.items():
        image = sitk.ReadImage(str(tmp_path / "out" / name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), np.array(lut)[array])
        assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
        assert image.GetDirection() == pytest.approx(DIRECTION)


def test_bad_file_is_named_and_the_others_are_converted(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    write_prediction(pred / "good.nii.gz", prediction(3))
    bad = prediction(4)
    bad[0, 0, 0] = 5
    write_prediction(pred / "bad.nii.gz", bad)
    with pytest.raises(UnconvertedFilesError, match=r"(?s)1 of 2 file\(s\).*bad\.nii\.gz contains values \[5\]"):
        convert_predictions_to_brats(str(pred), str(tmp_path / "out"), "gli")
    assert os.listdir(tmp_path / "out") == ["good.nii.gz"]


def test_folder_arguments_are_checked(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No .nii.gz prediction files"):
        convert_predictions_to_brats(str(tmp_path / "empty"), str(tmp_path / "out"), "2021")
    with pytest.raises(ValueError, match="is the prediction folder"):
        convert_predictions_to_brats(str(tmp_path / "empty"), str(tmp_path / "empty"), "2021")
    with pytest.raises(ValueError, match="does not exist"):
        convert_predictions_to_brats(str(tmp_path / "nope"), str(tmp_path / "out"), "2021")


def test_cli_exit_status(tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    write_prediction(pred / "a.nii.gz", prediction(5))
    assert main(["to-brats", str(pred), str(tmp_path / "out"), "--convention", "2021", "-np", "1"]) == 0
    assert "Wrote 1 file(s) with 2021 labels" in capsys.readouterr().out
    write_prediction(pred / "b.nii.gz", np.full((12, 16, 16), 4))
    assert main(["to-brats", str(pred), str(tmp_path / "out2"), "--convention", "gli", "-np", "1"]) == 1
    assert "b.nii.gz contains values [4]" in capsys.readouterr().err
    assert main(["to-brats", str(pred), str(pred), "--convention", "gli"]) == 2
