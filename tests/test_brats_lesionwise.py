"""BraTS's lesion-wise metrics: hand-computed cases, the official package's own file-based path, the benchmark."""
from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_mstkd.evaluation.brats_lesionwise import HD95_PENALTY, combine, lesion_wise_metrics, load_evaluator
from nnunetv2_mstkd.regions import BRATS_REGIONS

from conftest import CONFIGURATION, PLANS, bin_path, nnunet_env, run

pytest.importorskip("brats_evaluation", reason="the optional extra [brats]; scripts/setup_env.sh installs it")


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator("gli")


def _case() -> tuple[np.ndarray, np.ndarray]:
    """Our labels (1 edema, 2 necrosis, 3 enhancing): ET has a matched, a missed, a spurious and a split lesion."""
    ref = np.zeros((40, 40, 40), np.uint8)
    pred = ref.copy()
    ref[2:6, 2:6, 2:6] = 3          # matched exactly
    ref[12:16, 12:16, 12:16] = 3    # missed
    pred[30:33, 30:33, 30:33] = 3   # spurious
    ref[20:28, 2:10, 2:10] = 3      # split in the prediction into 4 + 3 slices
    pred[2:6, 2:6, 2:6] = 3
    pred[20:24, 2:10, 2:10] = 3
    pred[25:28, 2:10, 2:10] = 3
    ref[1:7, 1:7, 1:7][ref[1:7, 1:7, 1:7] == 0] = 1  # edema shell around the first lesion, in both
    pred[1:7, 1:7, 1:7][pred[1:7, 1:7, 1:7] == 0] = 1
    return pred, ref


def test_hand_computed_lesion_counts_and_dice(evaluator):
    pred, ref = _case()
    m = lesion_wise_metrics(evaluator, pred, ref, (1.0, 1.0, 1.0), BRATS_REGIONS)["ET"]
    # matched: the exact lesion and the larger piece of the split one; missed 1; spurious: the other piece + 1
    assert (m["LesionTP"], m["LesionFN"], m["LesionFP"]) == (2, 1, 2)
    split_dice = 2 * 256 / (512 + 256)  # the 4-slice piece (8*8*4 voxels) against the 8*8*8 lesion
    assert m["LesionDice"] == pytest.approx((1.0 + split_dice) / 5)
    assert m["LesionHD95"] > HD95_PENALTY * 3 / 5  # three penalties of five, plus the split lesion's HD95
    # WT: the first lesion with its shell is one lesion; the other three ET lesions are WT lesions too
    wt = lesion_wise_metrics(evaluator, pred, ref, (1.0, 1.0, 1.0), BRATS_REGIONS)["WT"]
    assert (wt["LesionTP"], wt["LesionFN"], wt["LesionFP"]) == (2, 1, 2)


def test_combination_by_hand():
    assert combine(0, 0, 0, float("nan"), float("nan")) == {"LesionDice": 1.0, "LesionHD95": 0.0}
    assert combine(0, 1, 0, float("nan"), float("nan")) == {"LesionDice": 0.0, "LesionHD95": HD95_PENALTY}
    got = combine(2, 1, 1, 0.8, 3.0)
    assert got["LesionDice"] == pytest.approx(0.4) and got["LesionHD95"] == pytest.approx((6 + 2 * 373) / 4)


def test_same_numbers_as_the_package_on_files(evaluator, tmp_path):
    """The package reads NIfTI files in its own GLI labels (written here by hand).

    Isotropic voxels: read from a file through SimpleITK, panoptica 2.1.7 pairs the (z, y, x) array with the
    (x, y, z) spacing, so on anisotropic voxels its file path and the array path disagree on HD95; we pass
    the array with its spacing per array axis.
    """
    from brats_evaluation import evaluate_single_exam

    pred, ref = _case()
    gli = {0: 0, 1: 2, 2: 1, 3: 3}  # ours -> GLI: edema is SNFH (2), necrosis NETC (1), ET stays 3
    spacing_xyz = (1.0, 1.0, 1.0)
    paths = {}
    for name, arr in (("pred", pred), ("ref", ref)):
        img = sitk.GetImageFromArray(np.vectorize(gli.get)(arr).astype(np.uint8))
        img.SetSpacing(spacing_xyz)
        paths[name] = str(tmp_path / f"{name}_00001-000.nii.gz")
        sitk.WriteImage(img, paths[name])
    theirs = evaluate_single_exam(paths["pred"], paths["ref"], "00001-000", evaluator)
    ours = lesion_wise_metrics(evaluator, pred, ref, spacing_xyz[::-1], BRATS_REGIONS)
    for region, group in (("WT", "wt"), ("TC", "tc"), ("ET", "et")):
        t = theirs[group]
        assert (ours[region]["LesionTP"], ours[region]["LesionFP"], ours[region]["LesionFN"]) == (t["tp"], t["fp"],
                                                                                                  t["fn"])
        want = combine(t["tp"], t["fp"], t["fn"], t["sq_dsc"], t["sq_hd95"])
        assert ours[region]["LesionDice"] == pytest.approx(want["LesionDice"])
        assert ours[region]["LesionHD95"] == pytest.approx(want["LesionHD95"])
    assert ours["ET"]["LesionHD95"] != lesion_wise_metrics(evaluator, pred, ref, (2, 1.5, 1), BRATS_REGIONS)["ET"][
        "LesionHD95"]  # the spacing reaches the distances


def test_without_the_package_the_message_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "brats_evaluation", None)
    with pytest.raises(ImportError, match=r"pip install \"nnunetv2-mstkd\[brats\]\""):
        load_evaluator("gli")
    with pytest.raises(ValueError, match="ped"):
        load_evaluator("ped")


@pytest.mark.e2e
def test_benchmark_adds_lesion_wise_columns_that_match_the_package(planned_dataset, train_model, tmp_path,
                                                                     evaluator):
    from brats_evaluation import evaluate_single_exam

    root, dataset_id = planned_dataset
    model = "nnUNetTrainer_5ep25it"
    train_model(model)
    out = tmp_path / "bench"
    run([bin_path("mstkd_benchmark"), "-d", str(dataset_id), "-c", CONFIGURATION, "-f", "0", "-p", PLANS, "-tr",
         model, "-o", str(out), "-device", "cpu", "--disable_tta", "--save_predictions", "--brats-metrics", "gli",
         "--disable_progress_bar"], nnunet_env(root), timeout=900)
    with open(out / "per_case.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["LesionDice"] != "" and r["LesionHD95"] != "" and r["LesionTP"] != "" for r in rows)
    summary = json.load(open(out / "summary.json"))
    assert summary["metrics"] == ["Dice", "HD95", "LesionDice", "LesionHD95"]
    assert summary["benchmark"]["brats_metrics"] == "gli"
    assert "| Lesion-wise Dice (%) | WT |" in (out / "results.md").read_text()
    row = next(r for r in rows if r["subset"] == "FL+T1Gd" and r["region"] == "TC")
    # the package's own path on the saved prediction and the reference, both in GLI labels
    gli = np.array([0, 2, 1, 3], np.uint8)
    raw = next((root / "raw").glob(f"Dataset{dataset_id:03d}_*"))
    paths = {}
    for name, path in (("pred", out / "predictions" / model / "FL+T1Gd" / f"{row['case']}.nii.gz"),
                       ("ref", raw / "labelsTr" / f"{row['case']}.nii.gz")):
        img = sitk.ReadImage(str(path))
        mapped = sitk.GetImageFromArray(gli[sitk.GetArrayFromImage(img)])
        mapped.CopyInformation(img)
        paths[name] = str(tmp_path / f"{name}_00001-000.nii.gz")
        sitk.WriteImage(mapped, paths[name])
    t = evaluate_single_exam(paths["pred"], paths["ref"], "00001-000", evaluator)["tc"]
    want = combine(t["tp"], t["fp"], t["fn"], t["sq_dsc"], t["sq_hd95"])
    assert float(row["LesionDice"]) == pytest.approx(want["LesionDice"], abs=1e-9)
    assert float(row["LesionHD95"]) == pytest.approx(want["LesionHD95"], abs=1e-6)
    assert (out / "dice_heatmap.png").is_file()
