"""Expected accuracy per subset, what to acquire, the case report and its picture (hand-made benchmark)."""
from __future__ import annotations

import json
from itertools import combinations

import matplotlib.image
import numpy as np
import pytest

from nnunetv2_mstkd.evaluation.acquisition import acquisition_markdown, acquisition_rows, mean_gain_matrix
from nnunetv2_mstkd.inference.case_report import caption, case_report, index_markdown
from nnunetv2_mstkd.inference.expected_accuracy import gain_rows, load_expectation
from nnunetv2_mstkd.inference.overlay import plot_overlay, tumour_centre
from nnunetv2_mstkd.modalities import subset_label

CHANNELS = ["T1", "T1ce", "T2", "FLAIR"]
# Hand-made: a subset's Dice is the sum of its channels' contributions (capped at 0.95), per region.
CONTRIB = {"WT": [0.10, 0.10, 0.30, 0.45], "TC": [0.05, 0.50, 0.10, 0.10], "ET": [0.02, 0.70, 0.03, 0.05]}
DATASET_JSON = {"channel_names": {str(i): n for i, n in enumerate(CHANNELS)},
                "labels": {"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}}


def dice_of(subset, region):
    return min(0.95, sum(CONTRIB[region][c] for c in subset))


def hand_summary(model="nnUNetTrainerMSTKD"):
    results = {}
    for k in range(1, 5):
        for subset in combinations(range(4), k):
            results[subset_label(subset, CHANNELS)] = {
                r: {"Dice": {"mean": dice_of(subset, r), "std": 0.1, "n": 42},
                    "HD95": {"mean": 10.0 - k, "std": 1.0, "n": 42}} for r in CONTRIB}
    return {"models": [model], "subsets": list(results), "regions": list(CONTRIB), "metrics": ["Dice", "HD95"],
            "results": {model: results},
            "benchmark": {"dataset": "Dataset993_SynthBraTS", "plans": "nnUNetPlansCPU", "configuration": "3d_fullres",
                          "fold": "0, 1, 2", "n_cases": 42, "cases_source": "validation", "channel_names": CHANNELS,
                          "labels": DATASET_JSON["labels"]}}


@pytest.fixture()
def bench(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "summary.json").write_text(json.dumps(hand_summary()))
    return str(tmp_path / "bench")


def test_expected_values_come_from_the_cases_subset(bench):
    e = load_expectation(bench, "nnUNetTrainerMSTKD")
    got = e.expected([0, 2, 3])  # T1, T2, FLAIR: T1ce absent
    assert got["ET"]["Dice"] == {"mean": pytest.approx(0.10), "sd": 0.1, "n": 42}
    assert got["WT"]["Dice"]["mean"] == pytest.approx(0.85) and got["WT"]["HD95"]["mean"] == 7.0
    assert e.provenance["n_cases"] == 42 and e.provenance["folds"] == "0, 1, 2"


def test_acquisition_ranking_matches_the_hand_table(bench):
    e = load_expectation(bench, "nnUNetTrainerMSTKD")
    ranking = e.acquisition_gains([2])  # T2 alone; gains by hand: T1ce (0+50+70)/3, FLAIR (45+10+5)/3, T1 (10+5+2)/3
    assert [g["channel"] for g in ranking] == ["T1ce", "FLAIR", "T1"]
    assert ranking[0]["gain"] == pytest.approx({"WT": 10.0, "TC": 50.0, "ET": 70.0})
    assert ranking[0]["mean_gain"] == pytest.approx(130 / 3) and ranking[2]["mean_gain"] == pytest.approx(17 / 3)
    # the cap: T2+FLAIR+T1ce has WT 0.85 → adding T1 reaches 0.95, a gain of 10, not 10 + 0
    (last,) = e.acquisition_gains([1, 2, 3])
    assert last["channel"] == "T1" and last["gain"]["WT"] == pytest.approx(10.0)
    rows = gain_rows(e)
    assert len(rows) == (4 * 3 + 6 * 2 + 4 * 1) * 3
    row = next(r for r in rows if r["subset"] == "T2" and r["added"] == "T1ce" and r["region"] == "ET")
    assert (row["dice_before"], row["dice_after"], row["gain"]) == (3.0, 73.0, 70.0)


def test_benchmark_for_another_model_or_a_broken_file_is_refused(bench, tmp_path):
    e = load_expectation(bench, "nnUNetTrainerMSTKD")
    e.check_model(DATASET_JSON, "Dataset993_SynthBraTS", "nnUNetTrainerMSTKD", "nnUNetPlansCPU", "3d_fullres")
    other = dict(DATASET_JSON, labels={"background": 0, "tumour": 1})
    with pytest.raises(ValueError, match="plans: benchmark 'nnUNetPlansCPU', model 'nnUNetPlans'; labels:"):
        e.check_model(other, "Dataset993_SynthBraTS", "nnUNetTrainerMSTKD", "nnUNetPlans", "3d_fullres")
    with pytest.raises(ValueError, match="has no results for nnUNetTrainer; it holds nnUNetTrainerMSTKD"):
        load_expectation(bench, "nnUNetTrainer")
    with pytest.raises(FileNotFoundError, match="Give an mstkd_benchmark output folder"):
        load_expectation(str(tmp_path / "nowhere"), "nnUNetTrainerMSTKD")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(hand_summary())[:200])
    with pytest.raises(ValueError, match="not valid JSON .* truncated"):
        load_expectation(str(broken), "nnUNetTrainerMSTKD")


def test_case_report_flags_uncertain_regions_in_plain_words(bench):
    e = load_expectation(bench, "nnUNetTrainerMSTKD")
    report = case_report("c1", CHANNELS, [1], e, min_dice=50, empty=False)
    assert report["present"] == ["T1", "T2", "FLAIR"] and report["absent"] == ["T1ce"]
    assert len(report["flags"]) == 2  # TC 25 and ET 10 are below 50; WT 85 is not
    assert report["flags"][1].startswith("ET: expected Dice 10 ± 10 without T1ce (benchmark of 42 cases), below 50")
    assert report["recommendation"].startswith("Acquiring T1ce would help most")
    assert "expected Dice WT 85 ± 10, TC 25 ± 10, ET 10 ± 10" in caption(report)
    empty = case_report("c2", CHANNELS, [], None, 50, empty=True)
    assert empty["flags"] == ["The prediction is empty: no tumour was found in this case."]
    index = index_markdown([report, empty], {"c1": {"overlay": "/x/c1_overlay.png"}})
    assert "| c1 | T1ce | ET" not in index and "[overlay](c1_overlay.png)" in index and "| c2 | – |" in index


def test_acquisition_table_of_the_benchmark(bench):
    summary = hand_summary()
    rows = acquisition_rows(summary, CHANNELS, ["nnUNetTrainerMSTKD"])
    subsets, matrix = mean_gain_matrix(rows, "nnUNetTrainerMSTKD", CHANNELS)
    assert len(subsets) == 14 and np.isnan(matrix[subsets.index("T2"), 2])
    assert matrix[subsets.index("T2"), 1] == pytest.approx(130 / 3, abs=0.01)
    text = acquisition_markdown(rows, ["nnUNetTrainerMSTKD"], CHANNELS)
    assert "| T2 | +5.7 | +43.3 | – | +20.0 | T1ce |" in text


def test_overlay_picture_has_its_size_and_is_not_blank(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 1, (20, 24, 28)).astype(np.float32), None, rng.uniform(0, 1, (20, 24, 28)), None]
    seg = np.zeros((20, 24, 28), dtype=np.uint8)
    seg[8:14, 10:16, 12:20] = 1
    seg[10:12, 12:14, 14:18] = 3
    assert tumour_centre(seg) == (11, 13, 16) and tumour_centre(np.zeros((4, 6, 8))) == (2, 3, 4)
    path = str(tmp_path / "c_overlay.png")
    plot_overlay(images, CHANNELS, seg, {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}, path, "c", "caption")
    picture = matplotlib.image.imread(path)
    assert picture.shape[:2] == (1200, 900)
    assert picture[..., :3].std() > 0.05
    # the outline colours are drawn: some pixels are the WT green and some the ET red
    rgb = (picture[..., :3] * 255).round().astype(int).reshape(-1, 3)
    assert (np.abs(rgb - [0x2c, 0xa0, 0x2c]).max(axis=1) < 40).sum() > 10
    assert (np.abs(rgb - [0xd6, 0x27, 0x28]).max(axis=1) < 40).sum() > 10


def test_empty_prediction_still_gets_its_report_and_a_picture_that_says_so(tmp_path, bench):
    import SimpleITK as sitk

    from nnunetv2_mstkd.inference.case_report import write_case_outputs

    files = []
    for i in range(4):
        path = str(tmp_path / f"e_{i:04d}.nii.gz")
        sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(i).uniform(0, 1, (12, 14, 16))), path)
        files.append(path if i != 1 else None)
    report = case_report("e", CHANNELS, [1], load_expectation(bench, "nnUNetTrainerMSTKD"), 50, empty=True)
    paths = write_case_outputs(report, str(tmp_path), files, CHANNELS, np.zeros((12, 14, 16), np.uint8),
                               {"WT": (1, 2, 3)}, (1.0, 1.0, 1.0), write_report=True, overlay=True)
    assert json.load(open(paths["report"]))["flags"][0].startswith("The prediction is empty")
    assert matplotlib.image.imread(paths["overlay"]).shape[:2] == (1200, 900)
