"""mstkd_convert: challenge downloads -> nnU-Net raw datasets (small generated cases)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

from nnunetv2_mstkd.atomic_io import atomic_path, partial_path
from nnunetv2_mstkd.data.convert import (
    CONVENTIONS,
    REPORT_NAME,
    SCHEMES,
    convert_dataset,
    dataset_folder,
    find_download_cases,
)
from nnunetv2_mstkd.data.convert.schemes import CHANNEL_NAMES
from nnunetv2_mstkd.modalities import BRATS_CHANNELS

SHAPE = (12, 16, 16)  # numpy (z, y, x): a 16 x 16 x 12 volume
SPACING = (0.9, 1.1, 1.5)
ORIGIN = (-10.0, 5.0, 2.5)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a rotation, so a lost direction is noticed
TAGS = {"brats2021": ("t1", "t1ce", "t2", "flair"), "fets": ("t1", "t1ce", "t2", "flair"),
        "brats-gli": ("t1n", "t1c", "t2w", "t2f")}


@pytest.fixture(autouse=True)
def raw_root(tmp_path, monkeypatch):
    """A private nnUNet_raw; the other nnU-Net folders unset so no real dataset IDs interfere."""
    root = tmp_path / "raw"
    root.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(root))
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)
    return root


def write_volume(path, array, spacing=SPACING, origin=ORIGIN, direction=DIRECTION):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=str(path).endswith(".gz"))


def label_volume(labels):
    """Each label value fills its own slabs of z, so every voxel's mapping is checked."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    for z in range(SHAPE[0]):
        seg[z, 4:12, 4:12] = labels[z % len(labels)]
    return seg


def write_case(src, scheme, case_id, labels=(0, 1, 2, 4), tags=None, seg=True, subfolder=True, ext=".nii.gz",
               geometry=None, image=None):
    """Write one case with the scheme's real file names; returns {tag: path}.

    ``geometry`` maps a tag to write_volume keyword overrides, ``image`` a tag to the array to use.
    """
    folder = src / case_id if subfolder else src
    folder.mkdir(parents=True, exist_ok=True)
    sep = "-" if scheme == "brats-gli" else "_"
    rng = np.random.default_rng(len(case_id))
    paths = {}
    for k, tag in enumerate(TAGS[scheme] if tags is None else tags):
        paths[tag] = folder / f"{case_id}{sep}{tag}{ext}"
        array = (image or {}).get(tag, (rng.random(SHAPE) * 100 + 1000 * k).astype(np.float32))
        write_volume(paths[tag], array, **(geometry or {}).get(tag, {}))
    if seg:
        paths["seg"] = folder / f"{case_id}{sep}seg{ext}"
        write_volume(paths["seg"], label_volume(labels), **(geometry or {}).get("seg", {}))
    return paths


def read(path):
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def report_of(folder):
    with open(os.path.join(folder, REPORT_NAME)) as f:
        return json.load(f)


def test_brats2021_case_folders(tmp_path):
    src = tmp_path / "BraTS2021_Training"
    good = write_case(src, "brats2021", "BraTS2021_00000")
    write_case(src, "brats2021", "BraTS2021_00001")
    write_case(src, "brats2021", "BraTS2021_00002", seg=False)
    write_case(src, "brats2021", "BraTS2021_00003", tags=("t1", "t2", "flair"))
    (src / "README.txt").write_text("not an image")

    report = convert_dataset("brats2021", str(src), 137, num_processes=1)
    out = tmp_path / "raw" / "Dataset137_BraTS2021"
    assert report.dataset_dir == str(out) and report.ok and report.num_training == 2

    assert sorted(os.listdir(out / "imagesTr")) == [f"BraTS2021_0000{i}_{c:04d}.nii.gz" for i in (0, 1)
                                                    for c in range(4)]
    assert sorted(os.listdir(out / "labelsTr")) == ["BraTS2021_00000.nii.gz", "BraTS2021_00001.nii.gz"]
    assert sorted(os.listdir(out / "imagesTs")) == [f"BraTS2021_00002_{c:04d}.nii.gz" for c in range(4)]
    assert not (out / "labelsTs").exists()
    for c, tag in enumerate(("t1", "t1ce", "t2", "flair")):  # byte copies, each under its own channel
        assert (out / "imagesTr" / f"BraTS2021_00000_{c:04d}.nii.gz").read_bytes() == good[tag].read_bytes()

    image, seg = read(out / "labelsTr" / "BraTS2021_00000.nii.gz")
    expected = label_volume((0, 2, 1, 3))  # 1 necrosis -> 2, 2 edema -> 1, 4 enhancing -> 3
    np.testing.assert_array_equal(seg, expected)
    assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
    assert image.GetDirection() == pytest.approx(DIRECTION)

    with open(out / "dataset.json") as f:
        ds = json.load(f)
    assert ds["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
    assert ds["labels"] == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert ds["regions_class_order"] == [1, 2, 3] and ds["numTraining"] == 2 and ds["file_ending"] == ".nii.gz"

    rep = report_of(out)
    assert rep["converted"] == ["BraTS2021_00000", "BraTS2021_00001"]
    assert rep["to_imagesTs"] == ["BraTS2021_00002"]
    assert rep["incomplete"] == {"BraTS2021_00003": {"missing": ["T1ce"], "written_to": None}}
    assert rep["errors"] == {} and rep["skipped_already_done"] == []
    assert "BraTS2021_00003: missing T1ce; left out" in report.summary()
    verify_dataset_integrity(str(out), num_processes=1)


def test_gli_post_treatment_label_and_partitions(tmp_path):
    src = tmp_path / "BraTS2024-GLI"
    write_case(src / "site_a", "brats-gli", "BraTS-GLI-00005-100", labels=(0, 1, 2, 3, 4))
    write_case(src / "site_b", "brats-gli", "BraTS-GLI-00006-000", labels=(0, 1, 2, 3))

    report = convert_dataset("brats-gli", str(src), 240, dataset_name="GLI2024", num_processes=1)
    out = tmp_path / "raw" / "Dataset240_GLI2024"
    assert report.ok and report.num_training == 2
    _, seg = read(out / "labelsTr" / "BraTS-GLI-00005-100.nii.gz")
    # 1 NETC -> 2, 2 SNFH -> 1, 3 ET -> 3, 4 resection cavity -> background
    np.testing.assert_array_equal(seg, label_volume((0, 2, 1, 3, 0)))
    cavity = int((label_volume((0, 1, 2, 3, 4)) == 4).sum())
    assert cavity == 128  # 2 slabs (z = 4, 9) of 8 x 8 voxels
    rep = report_of(out)
    assert rep["relabelled_to_background"] == {"labels": {"4": "resection cavity"},
                                               "voxels": {"BraTS-GLI-00005-100": cavity}}
    assert "label 4 (resection cavity) set to background: 128 voxels in 1 case(s)" in report.summary()
    verify_dataset_integrity(str(out), num_processes=1)


def test_fets_flat_files_both_years_keep_incomplete_and_uncompressed(tmp_path):
    src = tmp_path / "FeTS"
    write_case(src, "fets", "FeTS2022_01151", subfolder=False)
    write_case(src, "fets", "FeTS2024_00042", subfolder=False, ext=".nii")
    write_case(src, "fets", "FeTS2022_00007", tags=("t1", "t2", "flair"), subfolder=False)
    write_case(src, "fets", "FeTS2022_00008", tags=("t1ce", "t2"), seg=False, subfolder=False)

    report = convert_dataset("fets", str(src), 222, keep_incomplete=True, num_processes=1)
    out = tmp_path / "raw" / "Dataset222_FeTS"
    assert report.ok and report.num_training == 2
    # absent channels keep their index free: never renumbered
    assert sorted(os.listdir(out / "imagesTs")) == [
        "FeTS2022_00007_0000.nii.gz", "FeTS2022_00007_0002.nii.gz", "FeTS2022_00007_0003.nii.gz",
        "FeTS2022_00008_0001.nii.gz", "FeTS2022_00008_0002.nii.gz"]
    assert os.listdir(out / "labelsTs") == ["FeTS2022_00007.nii.gz"]
    np.testing.assert_array_equal(read(out / "labelsTs" / "FeTS2022_00007.nii.gz")[1], label_volume((0, 2, 1, 3)))
    rep = report_of(out)
    assert rep["incomplete"] == {"FeTS2022_00007": {"missing": ["T1ce"], "written_to": "imagesTs"},
                                 "FeTS2022_00008": {"missing": ["T1", "FLAIR"], "written_to": "imagesTs"}}
    assert rep["to_imagesTs"] == ["FeTS2022_00007", "FeTS2022_00008"]
    # an uncompressed source is rewritten as .nii.gz with identical voxels and type
    src_img, src_arr = read(src / "FeTS2024_00042_t2.nii")
    dst_img, dst_arr = read(out / "imagesTr" / "FeTS2024_00042_0002.nii.gz")
    np.testing.assert_array_equal(dst_arr, src_arr)
    assert dst_img.GetPixelID() == src_img.GetPixelID() and dst_img.GetDirection() == src_img.GetDirection()


@pytest.mark.parametrize("scheme, bad", [("brats2021", 3), ("brats-gli", 5), ("fets", 7)])
def test_unexpected_label_fails_only_that_case(tmp_path, scheme, bad):
    ids = {"brats2021": ("BraTS2021_00001", "BraTS2021_00002"), "fets": ("FeTS2022_00001", "FeTS2022_00002"),
           "brats-gli": ("BraTS-GLI-00001-000", "BraTS-GLI-00002-000")}[scheme]
    src = tmp_path / "src"
    write_case(src, scheme, ids[0])
    paths = write_case(src, scheme, ids[1], labels=(0, 1, bad))

    report = convert_dataset(scheme, str(src), 10, num_processes=1)
    assert not report.ok and list(report.errors) == [ids[1]]
    message = report.errors[ids[1]]
    assert ids[1] in message and f"[{bad}]" in message and str(paths["seg"]) in message
    images_tr = sorted(os.listdir(os.path.join(report.dataset_dir, "imagesTr")))
    assert images_tr == [f"{ids[0]}_{c:04d}.nii.gz" for c in range(4)]
    assert report.num_training == 1 and report_of(report.dataset_dir)["errors"] == {ids[1]: message}


@pytest.mark.parametrize("tag, change, word", [
    ("t2", {"spacing": (0.9, 1.1, 3.0)}, "spacing"),
    ("t2", {"origin": (-10.0, 5.0, 7.5)}, "origin"),
    ("flair", {"direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, "orientation"),
    ("seg", {"origin": (0.0, 0.0, 0.0)}, "origin"),
])
def test_geometry_mismatch_names_both_files(tmp_path, tag, change, word):
    src = tmp_path / "src"
    paths = write_case(src, "brats2021", "BraTS2021_00009", geometry={tag: change})
    write_case(src, "brats2021", "BraTS2021_00010")

    report = convert_dataset("brats2021", str(src), 11, num_processes=1)
    message = report.errors["BraTS2021_00009"]
    assert word in message and str(paths[tag]) in message and str(paths["t1"]) in message
    assert report.num_training == 1


def test_shape_mismatch(tmp_path):
    small = np.zeros((12, 16, 15), dtype=np.float32)
    paths = write_case(tmp_path / "src", "brats2021", "BraTS2021_00009", image={"t1ce": small})
    report = convert_dataset("brats2021", str(tmp_path / "src"), 11, num_processes=1)
    message = report.errors["BraTS2021_00009"]
    assert "shape" in message and "(15, 16, 12)" in message and str(paths["t1ce"]) in message


@pytest.mark.parametrize("value, counts", [(np.nan, "3 NaN and 0 Inf"), (np.inf, "0 NaN and 3 Inf")])
def test_non_finite_image_is_refused(tmp_path, value, counts):
    bad = np.ones(SHAPE, dtype=np.float32)
    bad[0, 0, :3] = value
    paths = write_case(tmp_path / "src", "brats2021", "BraTS2021_00004", image={"t2": bad})
    report = convert_dataset("brats2021", str(tmp_path / "src"), 12, num_processes=1)
    message = report.errors["BraTS2021_00004"]
    assert str(paths["t2"]) in message and counts in message
    assert os.listdir(os.path.join(report.dataset_dir, "imagesTr")) == []


def test_rerun_skips_done_cases_and_redoes_partial_ones(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write_case(src, "brats2021", f"BraTS2021_0000{i}")
    first = convert_dataset("brats2021", str(src), 20, num_processes=1)
    out = first.dataset_dir
    stamp = os.stat(os.path.join(out, "imagesTr", "BraTS2021_00000_0000.nii.gz")).st_mtime_ns

    second = convert_dataset("brats2021", str(src), 20, num_processes=1)
    assert [r.status for r in second.results] == ["skipped"] * 3
    assert report_of(out)["skipped_already_done"] == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    assert os.stat(os.path.join(out, "imagesTr", "BraTS2021_00000_0000.nii.gz")).st_mtime_ns == stamp

    os.remove(os.path.join(out, "labelsTr", "BraTS2021_00001.nii.gz"))  # as if interrupted
    stale = partial_path(os.path.join(out, "imagesTr", "BraTS2021_00001_0002.nii.gz"))
    open(stale, "wb").close()
    third = convert_dataset("brats2021", str(src), 20, num_processes=1)
    assert [r.status for r in third.results] == ["skipped", "converted", "skipped"]
    assert not os.path.exists(stale) and third.num_training == 3


def test_failed_write_leaves_no_half_case(tmp_path, monkeypatch):
    write_case(tmp_path / "src", "brats2021", "BraTS2021_00000")
    real_copy = shutil.copyfile

    def copy_failing_on_t2(src, dst, **kwargs):
        if src.endswith("_t2.nii.gz"):
            raise OSError("No space left on device")
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy_failing_on_t2)
    report = convert_dataset("brats2021", str(tmp_path / "src"), 21, num_processes=1)
    assert report.errors == {"BraTS2021_00000": "BraTS2021_00000: OSError: No space left on device"}
    assert os.listdir(os.path.join(report.dataset_dir, "imagesTr")) == []


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "a.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(str(target)) as tmp:
        open(tmp, "wb").write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path / "out") == ["a.nii.gz"]


def test_duplicate_sequence_files(tmp_path):
    src = tmp_path / "src"
    paths = write_case(src, "brats2021", "BraTS2021_00000")
    shutil.copy(paths["t1"], src / "BraTS2021_00000_t1.nii.gz")
    cases, _ = find_download_cases("brats2021", str(src))
    assert len(cases) == 1 and "'t1' is present twice" in cases[0].duplicates[0]
    report = convert_dataset("brats2021", str(src), 22, num_processes=1)
    assert str(src / "BraTS2021_00000_t1.nii.gz") in report.errors["BraTS2021_00000"]


def test_wrong_scheme_and_bad_arguments(tmp_path, raw_root, monkeypatch):
    write_case(tmp_path / "src", "brats2021", "BraTS2021_00000")
    with pytest.raises(ValueError, match=r"No BraTS 2023/2024 GLI files .*BraTS-GLI-00000-000-t1c\.nii\.gz \(5 other"):
        convert_dataset("brats-gli", str(tmp_path / "src"), 30, num_processes=1)
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        convert_dataset("brats2021", str(tmp_path / "does_not_exist"), 30)
    with pytest.raises(ValueError, match="Known schemes: brats2021, brats-gli, fets"):
        convert_dataset("brats2019", str(tmp_path / "src"), 30)
    (raw_root / "Dataset031_Other").mkdir()
    with pytest.raises(ValueError, match="Dataset ID 31 is already used by Dataset031_Other"):
        dataset_folder(31, "BraTS2021")
    assert dataset_folder(31, "Other") == str(raw_root / "Dataset031_Other")
    with pytest.raises(ValueError, match="between 1 and 999"):
        dataset_folder(1000, "X")
    with pytest.raises(ValueError, match="may only contain"):
        dataset_folder(32, "my data")
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(RuntimeError, match="nnUNet_raw is not defined"):
        dataset_folder(33, "X")


def test_channel_names_match_the_project_and_conventions_undo_the_schemes():
    assert CHANNEL_NAMES == BRATS_CHANNELS
    for scheme in SCHEMES.values():
        back = CONVENTIONS[scheme.convention]
        for challenge, nnunet in scheme.label_map.items():
            assert back[nnunet] == (0 if challenge in scheme.background_labels else challenge)


def test_file_patterns_accept_real_names_only():
    assert SCHEMES["brats2021"].file_pattern.fullmatch("BraTS2021_01666_t1ce.nii.gz")["tag"] == "t1ce"
    assert SCHEMES["brats-gli"].file_pattern.fullmatch("BraTS-GLI-02073-100-t2f.nii.gz")["case"] == \
        "BraTS-GLI-02073-100"
    assert SCHEMES["fets"].file_pattern.fullmatch("FeTS2024_00001_seg.nii")["case"] == "FeTS2024_00001"
    for scheme, name in [("brats2021", "BraTS2021_00000_t1ce.nii.gz.bak"), ("brats2021", "BraTS2020_001_t1.nii.gz"),
                         ("brats-gli", "BraTS-MEN-00000-000-t1c.nii.gz"), ("fets", "FeTS21_001_t1.nii.gz"),
                         ("fets", "FeTS2022_00000_t1gd.nii.gz")]:
        assert SCHEMES[scheme].file_pattern.fullmatch(name) is None, name


def test_console_script_parallel_exit_status(tmp_path, raw_root):
    src = tmp_path / "src"
    write_case(src, "fets", "FeTS2022_00001")
    write_case(src, "fets", "FeTS2022_00002", labels=(0, 3))
    env = {**os.environ, "nnUNet_raw": str(raw_root)}
    proc = subprocess.run(["mstkd_convert", "fets", str(src), "-d", "7", "-np", "2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FeTS2022_00002: segmentation" in proc.stdout and "1 case(s) failed" in proc.stderr
    out = raw_root / "Dataset007_FeTS"
    assert sorted(os.listdir(out / "labelsTr")) == ["FeTS2022_00001.nii.gz"]
    assert report_of(out)["converted"] == ["FeTS2022_00001"]
