"""Synthetic BraTS-like data: the phantom's contrasts and the nnU-Net raw dataset writer."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

from nnunetv2_mstkd.data import synthetic
from nnunetv2_mstkd.data.phantom import (
    MIN_SIZE,
    TISSUE_LABELS,
    TISSUE_MEANS,
    TISSUES,
    make_case,
    make_case_with_tissues,
)
from nnunetv2_mstkd.data.synthetic import case_seed, generate_dataset, main

T1, T1CE, T2, FLAIR = range(4)
WM, GM, CSF, OEDEMA, NECROSIS, ENHANCING, VESSEL = range(7)
SIZE = 32


@pytest.fixture(scope="module")
def cases():
    return [make_case_with_tissues((3, 0, i), SIZE) for i in range(6)]


def _tissue_mean(image, tissue, t, c):
    return float(image[c][tissue == t].mean())


def test_same_seed_gives_identical_arrays_and_other_seeds_differ():
    a_img, a_lab = make_case((5, 0, 2), SIZE)
    b_img, b_lab = make_case((5, 0, 2), SIZE)
    c_img, _ = make_case((5, 0, 3), SIZE)
    assert a_img.tobytes() == b_img.tobytes() and a_lab.tobytes() == b_lab.tobytes()
    assert not np.array_equal(a_img, c_img)
    g_img, g_lab = make_case(np.random.default_rng((5, 0, 2)), SIZE)
    assert np.array_equal(g_img, a_img) and np.array_equal(g_lab, a_lab)


def test_shapes_dtypes_and_label_values(cases):
    for image, label, tissue in cases:
        assert image.shape == (4, SIZE, SIZE, SIZE) and image.dtype == np.float32
        assert label.shape == (SIZE,) * 3 and label.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        assert label.any()
        # the label map is the tumour part of the tissue map
        assert np.array_equal(label, np.where(tissue >= 0, TISSUE_LABELS[tissue], 0))


def test_background_is_exactly_zero_and_brain_strictly_positive(cases):
    for image, label, tissue in cases:
        outside = tissue < 0
        assert outside[0, 0, 0] and outside.mean() > 0.5
        assert np.all(image[:, outside] == 0)
        assert np.all(image[:, ~outside] > 0)
        assert not np.any(label[outside])


def _necrosis_neighbours(label):
    """Counts of the labels that face-touch necrosis (label 2), keyed by label."""
    nec = label == 2
    counts = {0: 0, 1: 0, 3: 0}
    for axis in range(3):
        for shift in (1, -1):
            neighbour = np.roll(label, shift, axis=axis)
            for lab in counts:
                counts[lab] += int((nec & (neighbour == lab)).sum())
    return counts


def test_tumour_compartments_are_nested():
    # necrosis sits inside the enhancing rim: it (almost) never touches healthy brain, and touches
    # oedema only in the tumours drawn with little (patchy) enhancement
    counts = [_necrosis_neighbours(make_case((3, 0, i), SIZE)[1]) for i in range(8)]
    assert sum(c[0] for c in counts) <= 0.01 * sum(sum(c.values()) for c in counts)
    with_necrosis = [c for c in counts if c[1] + c[3] > 0]
    assert len(with_necrosis) >= 6
    assert sum(c[1] == 0 and c[3] > 0 for c in with_necrosis) >= len(with_necrosis) - 2


def test_necrosis_neighbours_counts_face_contacts():
    label = np.zeros((5, 5, 5), dtype=np.uint8)
    label[2, 2, 2] = 2
    label[1, 2, 2] = 3
    label[2, 1, 2] = 1
    assert _necrosis_neighbours(label) == {0: 4, 1: 1, 3: 1}


def test_contrasts_follow_brats(cases):
    def mean_over_cases(t, c):
        return np.mean([_tissue_mean(img, tis, t, c) / np.median(img[c][tis == WM])
                        for img, _, tis in cases if (tis == t).any()])

    # enhancing rim bright mostly in T1ce
    assert mean_over_cases(ENHANCING, T1CE) > 1.3 * mean_over_cases(OEDEMA, T1CE)
    assert mean_over_cases(ENHANCING, T1CE) > 1.3 * mean_over_cases(NECROSIS, T1CE)
    # oedema bright in FLAIR and T2; CSF dark in FLAIR, bright in T2
    assert mean_over_cases(OEDEMA, FLAIR) > 3 * mean_over_cases(CSF, FLAIR)
    assert mean_over_cases(CSF, T2) > 1.5 * mean_over_cases(GM, T2)
    assert mean_over_cases(OEDEMA, T2) > 1.3 * mean_over_cases(GM, T2)
    assert mean_over_cases(OEDEMA, T2) > 2.0  # white matter is 1 after the normalisation above
    # necrosis dark in T1ce, bright in T2; tumour slightly dark in T1
    assert mean_over_cases(NECROSIS, T1CE) < 0.8
    assert mean_over_cases(NECROSIS, T2) > mean_over_cases(OEDEMA, T2)
    assert 0.7 < mean_over_cases(OEDEMA, T1) < 0.95
    # vessels mimic enhancement in T1ce only: dark in T2 and FLAIR
    assert mean_over_cases(VESSEL, T1CE) > 1.2
    assert mean_over_cases(VESSEL, T2) < 1.0 and mean_over_cases(VESSEL, FLAIR) < 1.0


def _interior(mask):
    """Voxels of ``mask`` whose six face neighbours are in ``mask`` too (out of reach of the blur)."""
    out = mask.copy()
    for axis in range(3):
        for shift in (1, -1):
            out &= np.roll(mask, shift, axis=axis)
    return out


@pytest.mark.parametrize("t", [OEDEMA, NECROSIS, ENHANCING])
def test_mean_intensities_match_the_documented_table(cases, t):
    # ratios to white matter are what survives the per-case scale and the bias field
    ratios = [[float(img[c][_interior(tis == t)].mean() / np.median(img[c][tis == WM])) for c in range(4)]
              for img, _, tis in cases if _interior(tis == t).any()]
    assert len(ratios) >= 2
    expected = TISSUE_MEANS[t] / TISSUE_MEANS[WM]
    np.testing.assert_allclose(np.mean(ratios, 0), expected, rtol=0.15, err_msg=TISSUES[t])


def test_channel_scales_differ_between_cases(cases):
    wm = np.array([[np.median(img[c][tis == WM]) for c in range(4)] for img, _, tis in cases])
    assert np.all(wm.max(0) / wm.min(0) > 1.5)


@pytest.mark.parametrize("size", [MIN_SIZE - 1, 0, 32.0, True])
def test_make_case_rejects_bad_size(size):
    with pytest.raises(ValueError, match="at least 24"):
        make_case(0, size)


def test_make_case_accepts_the_minimum_size():
    image, label = make_case(1, MIN_SIZE)
    assert image.shape == (4, MIN_SIZE, MIN_SIZE, MIN_SIZE) and label.any()


def _read(path):
    itk = sitk.ReadImage(path)
    return sitk.GetArrayFromImage(itk), itk.GetSpacing()


def test_generate_dataset_writes_a_valid_nnunet_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    folder = generate_dataset(7, num_cases=3, num_test_cases=2, size=MIN_SIZE, seed=4)
    assert folder == str(tmp_path / "Dataset007_SynthBraTS")
    assert sorted(os.listdir(tmp_path)) == ["Dataset007_SynthBraTS"]
    assert sorted(os.listdir(folder)) == ["dataset.json", "imagesTr", "imagesTs", "labelsTr", "labelsTs"]
    assert sorted(os.listdir(os.path.join(folder, "imagesTr")))[:5] == [
        f"SynthBraTS_000_000{c}.nii.gz" for c in range(4)] + ["SynthBraTS_001_0000.nii.gz"]
    assert len(os.listdir(os.path.join(folder, "imagesTs"))) == 8
    assert sorted(os.listdir(os.path.join(folder, "labelsTs"))) == ["SynthBraTS_test000.nii.gz",
                                                                     "SynthBraTS_test001.nii.gz"]
    with open(os.path.join(folder, "dataset.json")) as f:
        ds = json.load(f)
    assert ds["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    assert ds["labels"] == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert ds["regions_class_order"] == [1, 2, 3]
    assert ds["file_ending"] == ".nii.gz" and ds["numTraining"] == 3 and ds["numTest"] == 2

    # the files hold exactly what make_case gives for the case's seed, at 1 mm
    image, label = make_case(case_seed(4, "train", 1), MIN_SIZE)
    for c in range(4):
        arr, spacing = _read(os.path.join(folder, "imagesTr", f"SynthBraTS_001_000{c}.nii.gz"))
        assert spacing == (1.0, 1.0, 1.0) and arr.dtype == np.float32
        assert arr.tobytes() == image[c].tobytes()
    arr, _ = _read(os.path.join(folder, "labelsTr", "SynthBraTS_001.nii.gz"))
    assert np.array_equal(arr, label)
    test_image, _ = make_case(case_seed(4, "test", 0), MIN_SIZE)
    assert np.array_equal(_read(os.path.join(folder, "imagesTs", "SynthBraTS_test000_0001.nii.gz"))[0], test_image[1])

    verify_dataset_integrity(folder, num_processes=1)


def test_more_cases_leave_earlier_cases_unchanged(tmp_path):
    small = generate_dataset(1, num_cases=1, size=MIN_SIZE, raw_dir=str(tmp_path))
    large = generate_dataset(2, num_cases=2, num_test_cases=1, size=MIN_SIZE, raw_dir=str(tmp_path))
    for name in ("imagesTr/SynthBraTS_000_0003.nii.gz", "labelsTr/SynthBraTS_000.nii.gz"):
        assert np.array_equal(_read(os.path.join(small, name))[0], _read(os.path.join(large, name))[0])
    assert not os.path.exists(os.path.join(small, "imagesTs"))


BAD_ARGUMENTS = [
    ({"size": MIN_SIZE - 1}, "at least 24"),
    ({"dataset_id": 5}, "already used by"),
    ({"num_cases": 0}, "at least 1"),
    ({"num_test_cases": -1}, "0 or more"),
    ({"dataset_id": 0}, "1 to 999"),
    ({"dataset_id": 1000}, "1 to 999"),
    ({"seed": -3}, "non-negative"),
    ({"name": "bad/name"}, "Dataset name"),
]


@pytest.mark.parametrize("override,message", BAD_ARGUMENTS)
def test_bad_arguments_raise_and_write_nothing(tmp_path, monkeypatch, override, message):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    (tmp_path / "Dataset005_Other").mkdir()
    kwargs = {"dataset_id": 6, "num_cases": 1, "size": MIN_SIZE} | override
    with pytest.raises(ValueError, match=message):
        generate_dataset(**kwargs)
    assert os.listdir(tmp_path) == ["Dataset005_Other"]
    assert os.listdir(tmp_path / "Dataset005_Other") == []


def test_unset_nnunet_raw_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="nnUNet_raw is not set"):
        generate_dataset(1, num_cases=1, size=MIN_SIZE)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv,message", [
    (["-d", "1", "--cases", "0"], "at least 1"),
    (["-d", "1", "--size", "16"], "at least 24"),
    (["-d", "1", "--test-cases", "-2"], "0 or more"),
    (["-d", "1000"], "1 to 999"),
])
def test_cli_reports_bad_arguments(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_interrupted_run_leaves_no_folder(tmp_path, monkeypatch):
    calls = []

    def failing_make_case(seed, size):
        calls.append(seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return make_case(seed, size)

    monkeypatch.setattr(synthetic, "make_case", failing_make_case)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(9, num_cases=3, size=MIN_SIZE, raw_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_console_script_runs(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "mstkd_synth")
    env = dict(os.environ, nnUNet_raw=str(tmp_path))
    done = subprocess.run([script, "-d", "3", "--cases", "1", "--size", str(MIN_SIZE), "-n", "Tiny"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Dataset003_Tiny")
    assert sorted(os.listdir(tmp_path / "Dataset003_Tiny" / "labelsTr")) == ["Tiny_000.nii.gz"]


def test_brats_grid_has_bratss_geometry_and_passes_nnunet_checks(tmp_path):
    folder = generate_dataset(57, 2, 1, size=40, seed=1, raw_dir=str(tmp_path), brats_grid=True)
    image = sitk.ReadImage(os.path.join(folder, "imagesTr", "SynthBraTS_000_0001.nii.gz"))
    assert image.GetSize() == (240, 240, 155) and image.GetSpacing() == (1.0, 1.0, 1.0)
    assert image.GetOrigin() == (0.0, -239.0, 0.0)
    array = sitk.GetArrayFromImage(image)
    reference = make_case(case_seed(1, "train", 0), 40)[0][1]
    assert np.array_equal(array[57:97, 100:140, 100:140], reference)  # the phantom, centred
    outside = np.ones(array.shape, dtype=bool)
    outside[57:97, 100:140, 100:140] = False
    assert not array[outside].any()  # zero everywhere else (a float32 sum would depend on numpy's summation order)
    label = sitk.ReadImage(os.path.join(folder, "labelsTr", "SynthBraTS_000.nii.gz"))
    assert label.GetSize() == (240, 240, 155) and label.GetOrigin() == (0.0, -239.0, 0.0)
    assert json.load(open(os.path.join(folder, "dataset.json")))["synthetic"]["brats_grid"] is True
    verify_dataset_integrity(folder, num_processes=1)


def test_brats_grid_refuses_a_phantom_larger_than_the_grid(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["-d", "58", "--size", "160", "--brats-grid"])
    assert "does not fit BraTS's grid" in capsys.readouterr().err
