"""Finding a case's channel files and reading them (real NIfTI files, nnU-Net's reader); no model needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunetv2_mstkd.atomic_io import PARTIAL_MARKER, final_path, partial_path, remove_stale_partials, write_json
from nnunetv2_mstkd.inference.atomic_export import AtomicSegWriter
from nnunetv2_mstkd.inference.case_files import case_from_files, find_cases, unrecognised_files, unrecognised_message
from nnunetv2_mstkd.inference.channel_reader import ReadPolicy, read_present_channels
from nnunetv2_mstkd.inference.predict import resolve_device

CHANNELS = ["T1", "T1ce", "T2", "FLAIR"]


def _touch(folder, *names):
    for n in names:
        (folder / n).write_bytes(b"")


def _write(path, array, spacing=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(array.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return str(path)


def test_find_cases_detects_absent_files_and_missing_option(tmp_path):
    _touch(tmp_path, "a_0000.nii.gz", "a_0001.nii.gz", "a_0002.nii.gz", "a_0003.nii.gz",
           "b_0000.nii.gz", "b_0002.nii.gz", "b_0003.nii.gz", "notes.txt")
    cases = find_cases(str(tmp_path), CHANNELS, ".nii.gz", missing=[3])
    assert [c.case_id for c in cases] == ["a", "b"]
    a, b = cases
    assert a.absent == [3] and a.not_found == [] and a.excluded == [3]
    assert b.absent == [1, 3] and b.not_found == [1] and b.excluded == [3]
    assert b.files[0] == str(tmp_path / "b_0000.nii.gz") and b.files[1] is None
    assert a.problem(CHANNELS) is None and b.problem(CHANNELS) is None
    assert a.describe(CHANNELS) == "case a: predicting without FLAIR (--missing)"
    assert b.describe(CHANNELS) == "case b: predicting without T1ce (file b_0001.nii.gz absent), FLAIR (--missing)"


def test_find_cases_complete_case_says_so(tmp_path):
    _touch(tmp_path, *(f"c_{i:04d}.nii.gz" for i in range(4)))
    (case,) = find_cases(str(tmp_path), CHANNELS, ".nii.gz")
    assert case.absent == [] and case.describe(CHANNELS) == "case c: all channels present"


def test_find_cases_every_channel_absent_is_a_problem_naming_expected_files(tmp_path):
    _touch(tmp_path, "x_0001.nii.gz")
    (case,) = find_cases(str(tmp_path), CHANNELS, ".nii.gz", missing=[1])
    problem = case.problem(CHANNELS)
    assert "case x: every channel is absent (T1ce excluded with --missing); at least one of" in problem
    for i in range(4):
        assert f"x_{i:04d}.nii.gz" in problem


def test_find_cases_unknown_channel_index_is_a_problem(tmp_path):
    _touch(tmp_path, *(f"y_{i:04d}.nii.gz" for i in range(5)))
    (case,) = find_cases(str(tmp_path), CHANNELS, ".nii.gz")
    assert "y_0004.nii.gz" in case.problem(CHANNELS) and "4 channels" in case.problem(CHANNELS)


def test_find_cases_refuses_empty_or_absent_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_cases(str(tmp_path / "nope"), CHANNELS, ".nii.gz")
    _touch(tmp_path, "a_0000.nrrd", "b.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"No files named CASE_XXXX\.nii\.gz"):
        find_cases(str(tmp_path), CHANNELS, ".nii.gz")


def test_files_without_channel_suffix_are_skipped_and_listed(tmp_path):
    _touch(tmp_path, "b.nii.gz", "x_01.nii.gz", "c_0000.nii.gz", "c_0000.nii.gz.bak")
    assert [c.case_id for c in find_cases(str(tmp_path), CHANNELS, ".nii.gz")] == ["c"]
    assert unrecognised_files(str(tmp_path), ".nii.gz") == ["b.nii.gz", "x_01.nii.gz"]


def test_read_present_channels_matches_nnunet_reader_and_fills_zeros(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(1, 2, (5, 6, 7)) for _ in range(3)]
    files = [_write(tmp_path / f"c_{i}.nii.gz", a, spacing=(0.5, 1.0, 2.0)) for i, a in enumerate(arrays)]
    data, props, present = read_present_channels([files[0], None, files[1], files[2]], SimpleITKIO())
    reference, ref_props = SimpleITKIO().read_images(files)
    assert data.shape == (4, 5, 6, 7) and data.dtype == np.float32
    assert present.tolist() == [True, False, True, True]
    assert np.array_equal(data[[0, 2, 3]], reference) and not data[1].any()
    assert props["spacing"] == ref_props["spacing"] == [2.0, 1.0, 0.5]


@pytest.mark.parametrize("what, kwargs, shape, values", [
    ("shape", {}, (5, 6, 8), ("(5, 6, 7)", "(5, 6, 8)")),
    ("spacing", {"spacing": (1.0, 1.0, 1.5)}, (5, 6, 7), ("(1.0, 1.0, 1.0)", "(1.5, 1.0, 1.0)")),
    ("direction", {"direction": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, (5, 6, 7),
     ("(1.0, 0.0", "(-1.0, 0.0")),
    ("origin", {"origin": (0.0, 0.0, 2.5)}, (5, 6, 7), ("(0.0, 0.0, 0.0)", "(0.0, 0.0, 2.5)")),
])
def test_read_present_channels_geometry_mismatch_names_case_channels_files_and_values(tmp_path, capsys, what, kwargs,
                                                                                      shape, values):
    good = _write(tmp_path / "g_0000.nii.gz", np.ones((5, 6, 7)))
    bad = _write(tmp_path / "g_0002.nii.gz", np.ones(shape), **kwargs)
    with pytest.raises(ValueError, match=f"case g: channel T2 disagrees with channel T1 in {what}") as info:
        read_present_channels([good, None, bad, None], SimpleITKIO(), case_id="g", channel_names=CHANNELS)
    message = str(info.value)
    assert good in message and bad in message and all(v in message for v in values)
    allow = ReadPolicy(allow_geometry_mismatch=True)
    if what == "shape":  # cannot be stacked: refused whatever the policy
        with pytest.raises(ValueError, match="in shape"):
            read_present_channels([good, None, bad, None], SimpleITKIO(), case_id="g", policy=allow)
        return
    assert "--allow_geometry_mismatch" in message
    data, properties, present = read_present_channels([good, None, bad, None], SimpleITKIO(), case_id="g",
                                                      policy=allow, channel_names=CHANNELS)
    assert present.tolist() == [True, False, True, False] and data.shape == (4, 5, 6, 7)
    assert f"WARNING: case g: channel T2 disagrees with channel T1 in {what}" in capsys.readouterr().out


def test_files_that_look_like_images_but_are_not_channel_files_are_listed(tmp_path):
    _touch(tmp_path, "a_0000.nii.gz", "a_001.nii.gz", "a_0001.nii", "a_T1ce.nii.gz", "b_0002.mha", "scan.nrrd",
           "notes.txt", "a_0000.nii.gz.bak", ".a_0003.partial-1.nii.gz", "dataset.json")
    assert unrecognised_files(str(tmp_path), ".nii.gz") == ["a_0001.nii", "a_001.nii.gz", "a_T1ce.nii.gz",
                                                           "b_0002.mha", "scan.nrrd"]
    message = unrecognised_message(str(tmp_path), ["a_001.nii.gz"], ".nii.gz", CHANNELS)
    assert "a_001.nii.gz" in message and "CASE_XXXX.nii.gz" in message and "_0001 T1ce" in message
    assert "--allow_unrecognised_files" in message
    assert "--allow" not in unrecognised_message(str(tmp_path), ["x"], ".nii.gz", CHANNELS, skip_flag=None)


def test_read_present_channels_refuses_all_absent():
    with pytest.raises(ValueError, match="case z: every channel is absent"):
        read_present_channels([None, None], SimpleITKIO(), case_id="z")


def test_case_from_files_reads_channels_from_suffixes_in_any_order(tmp_path):
    files = [str(tmp_path / "k_0003.nii.gz"), str(tmp_path / "k_0000.nii.gz")]
    case = case_from_files(files, CHANNELS, ".nii.gz", missing=[0])
    assert case.case_id == "k" and case.absent == [0, 1, 2] and case.not_found == [1, 2] and case.excluded == [0]
    assert case.files[3] == files[0] and case.on_disk == [files[1], files[0]]
    with pytest.raises(ValueError, match="not named CASE_XXXX"):
        case_from_files([str(tmp_path / "k.nii.gz")], CHANNELS, ".nii.gz")
    with pytest.raises(ValueError, match="different cases"):
        case_from_files([str(tmp_path / "a_0000.nii.gz"), str(tmp_path / "b_0001.nii.gz")], CHANNELS, ".nii.gz")


def test_nonfinite_voxels_refuse_the_case_naming_file_and_counts_or_become_zero(tmp_path, capsys):
    image = np.ones((5, 6, 7))
    image[0, 0, :3] = np.nan
    image[1, 1, 1] = np.inf
    good = _write(tmp_path / "n_0000.nii.gz", np.ones((5, 6, 7)))
    bad = _write(tmp_path / "n_0001.nii.gz", image)
    assert not np.isfinite(image).all() and np.isfinite(SimpleITKIO().read_images([bad])[0]).all()  # ITK hides them
    with pytest.raises(ValueError, match="case n: .*n_0001.nii.gz contains 3 NaN and 1 Inf voxels") as info:
        read_present_channels([good, bad, None, None], SimpleITKIO(), case_id="n")
    assert "--allow_nonfinite" in str(info.value)
    data, _, _ = read_present_channels([good, bad, None, None], SimpleITKIO(), case_id="n",
                                       policy=ReadPolicy(allow_nonfinite=True))
    assert data[1, 0, 0, 0] == 0 and data[1, 1, 1, 1] == 0 and data[1, 2, 2, 2] == 1
    assert "WARNING: case n:" in capsys.readouterr().out


def test_write_json_leaves_only_the_final_file(tmp_path):
    write_json({"a": [1, 2]}, str(tmp_path / "x.json"))
    assert os.listdir(tmp_path) == ["x.json"] and json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2]}
    with pytest.raises(TypeError):
        write_json({"a": object()}, str(tmp_path / "y.json"))
    assert os.listdir(tmp_path) == ["x.json"]


def test_partial_names_keep_the_ending_and_map_back(tmp_path):
    tmp = partial_path(str(tmp_path / "case.nii.gz"))
    name = os.path.basename(tmp)
    assert name.startswith(".case" + PARTIAL_MARKER) and name.endswith(".nii.gz")
    assert final_path(tmp) == str(tmp_path / "case.nii.gz")
    truncated = partial_path(str(tmp_path / "case"), keep_ending=False)
    assert final_path(truncated + ".npz") == str(tmp_path / "case.npz")
    with pytest.raises(ValueError, match="not a temporary name"):
        final_path(str(tmp_path / "case.nii.gz"))


def test_stale_partials_of_dead_processes_are_removed_others_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {"dead": f".a{PARTIAL_MARKER}{dead.pid}-0123abcd.nii.gz", "init": f".b{PARTIAL_MARKER}1-0123abcd.json",
             "mine": os.path.basename(partial_path(str(tmp_path / "c.csv"))), "user": ".c.partial.txt"}
    _touch(tmp_path, *names.values())
    removed = remove_stale_partials(str(tmp_path))
    # a dead writer's file and the caller's own leftovers go; a running process's (pid 1) and other files stay
    assert sorted(os.path.basename(p) for p in removed) == sorted([names["dead"], names["mine"]])
    assert sorted(os.listdir(tmp_path)) == sorted([names["init"], names["user"]])


def test_atomic_seg_writer_moves_the_case_into_place_segmentation_last(tmp_path):
    seg = np.zeros((1, 4, 5, 6), dtype=np.uint8)
    seg[0, 1:3, 1:3, 1:3] = 2
    props = SimpleITKIO().read_images([_write(tmp_path / "ref.nii.gz", np.ones((4, 5, 6)))])[1]
    out = tmp_path / "out"
    out.mkdir()
    truncated = partial_path(str(out / "case"), keep_ending=False)
    for suffix in (".npz", ".pkl"):  # what nnU-Net's export writes before the segmentation
        open(truncated + suffix, "wb").write(b"x")
    AtomicSegWriter(SimpleITKIO).write_seg(seg[0], truncated + ".nii.gz", props)
    assert sorted(os.listdir(out)) == ["case.nii.gz", "case.npz", "case.pkl"]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case.nii.gz"))), seg[0])
    # a failing write leaves neither the case nor its temporary files
    truncated = partial_path(str(out / "other"), keep_ending=False)
    open(truncated + ".npz", "wb").write(b"x")
    with pytest.raises(KeyError):
        AtomicSegWriter(SimpleITKIO).write_seg(seg[0], truncated + ".nii.gz", {"bad": "properties"})
    assert sorted(os.listdir(out)) == ["case.nii.gz", "case.npz", "case.pkl"]
    # a plain name is written through a temporary file too
    AtomicSegWriter(SimpleITKIO).write_seg(seg[0], str(out / "plain.nii.gz"), props)
    assert "plain.nii.gz" in os.listdir(out) and not [f for f in os.listdir(out) if PARTIAL_MARKER in f]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_resolve_device_refuses_unavailable_cuda_and_tells_what_to_do():
    with pytest.raises(RuntimeError, match="Pass -device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="cpu, cuda or mps"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
