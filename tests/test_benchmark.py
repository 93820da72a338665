"""mstkd_benchmark end to end: two real nnU-Net models, real NIfTI cases, all 15 modality subsets.

The models are the session's tiny CPU models (one epoch of ten iterations), so the
scores are low; the tests check that the benchmark evaluates what users get, not
that the models are good.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.evaluation.benchmark import OUTPUT_FILES, run_benchmark
from nnunetv2_mstkd.evaluation.benchmark_cli import main
from nnunetv2_mstkd.evaluation.cases import folder_cases
from nnunetv2_mstkd.evaluation.output_folder import timing_markdown
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import BRATS_CHANNELS
from nnunetv2_mstkd.regions import BRATS_REGIONS, evaluation_regions

from conftest import CONFIGURATION, PLANS, bin_path, nnunet_env, run

MODELS = ("nnUNetTrainer_5ep25it", "nnUNetTrainerModalityDropout_1ep10it")
UNTRAINED = "nnUNetTrainer_5epochs"  # a real nnU-Net trainer that no test trains
# METHOD §5, typed out rather than computed, so a change of order in the code is caught.
PAPER_ORDER = ["T2", "T1Gd", "T1", "FL", "T1Gd+T2", "T1+T1Gd", "FL+T1", "T1+T2", "FL+T2", "FL+T1Gd",
               "FL+T1+T1Gd", "FL+T1+T2", "FL+T1Gd+T2", "T1+T1Gd+T2", "All"]


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _dataset_folder(root, kind: str):
    return next((root / kind).glob("Dataset987_*"))


def _read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _one_test_case(root, tmp_path):
    """``(case, folder)``: a folder with one of the two test cases (keeps runs short; labelsTs holds both)."""
    raw = _dataset_folder(root, "raw")
    case = sorted(p.name[:-len(".nii.gz")] for p in (raw / "labelsTs").glob("*.nii.gz"))[0]
    images = tmp_path / "images"
    images.mkdir()
    for f in (raw / "imagesTs").glob(f"{case}_*.nii.gz"):
        (images / f.name).symlink_to(f)
    return case, images


@pytest.fixture(scope="module")
def benchmark_run(planned_dataset, train_model, tmp_path_factory):
    """The console script on fold 0's validation cases: both models, one untrained trainer, saved predictions."""
    root, dataset_id = planned_dataset
    for m in MODELS:
        train_model(m)
    out = tmp_path_factory.mktemp("benchmark")
    proc = run([bin_path("mstkd_benchmark"), "-d", str(dataset_id), "-c", CONFIGURATION, "-f", "0", "-p", PLANS,
                "-tr", *MODELS, UNTRAINED, "-o", str(out), "-device", "cpu", "--disable_tta", "--save_predictions",
                "--reference", MODELS[1]], nnunet_env(root), timeout=900)
    val = json.loads((_dataset_folder(root, "preprocessed") / "splits_final.json").read_text())[0]["val"]
    return out, proc, root, sorted(val)


def test_every_output_exists_with_a_row_per_case_model_subset_region(benchmark_run):
    out, _, _, cases = benchmark_run
    for name in OUTPUT_FILES.values():
        assert (out / name).stat().st_size > 0, name
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    rows = _read_csv(out / "per_case.csv")
    assert len(rows) == len(cases) * 2 * 15 * 3
    keys = {(r["case"], r["model"], r["subset"], r["region"]) for r in rows}
    assert keys == {(c, m, s, g) for c in cases for m in MODELS for s in PAPER_ORDER for g in ("WT", "TC", "ET")}
    for r in rows:
        assert 0.0 <= float(r["Dice"]) <= 1.0 and math.isfinite(float(r["Dice"]))
        assert float(r["HD95"]) >= 0.0 and math.isfinite(float(r["HD95"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"] == list(MODELS) and summary["subsets"] == PAPER_ORDER
    assert summary["benchmark"]["cases"] == cases and summary["n_cases"] == {m: len(cases) for m in MODELS}
    assert (out / "dice_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # which sequence to acquire: every subset lacking something, every sequence it lacks, every region
    gains = _read_csv(out / "acquisition_gain.csv")
    assert len(gains) == len(MODELS) * (4 * 3 + 6 * 2 + 4 * 1) * 3
    g = next(r for r in gains if r["model"] == MODELS[0] and r["subset"] == "T2" and r["added"] == "T1ce"
             and r["region"] == "ET")
    means = summary["results"][MODELS[0]]
    assert float(g["gain"]) == pytest.approx(100 * (means["T1Gd+T2"]["ET"]["Dice"]["mean"]
                                                    - means["T2"]["ET"]["Dice"]["mean"]), abs=0.01)


def test_results_md_has_the_paper_layout_and_the_csv_means(benchmark_run):
    out, proc, _, cases = benchmark_run
    text = (out / "results.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Metric | Region | Method |"))
    assert [c.strip() for c in header.strip("|").split("|")][3:] == PAPER_ORDER + ["Avg"]
    for expected in ("Dataset987_SynthBraTS", "configuration 3d_fullres", f"plans {PLANS}", "fold 0",
                     f"Cases: {len(cases)} (validation cases of fold 0", "Machine: ", "mirroring off",
                     f"Command: `mstkd_benchmark -d 987 -c 3d_fullres -f 0 -tr {' '.join(MODELS)} {UNTRAINED}",
                     "## Paired Wilcoxon signed-rank tests", "## Timing"):
        assert expected in text, expected
    # Avg = mean over the 15 subsets of the mean over cases, recomputed from the CSV.
    rows = _read_csv(out / "per_case.csv")
    per_subset = [np.mean([float(r["Dice"]) for r in rows if r["model"] == MODELS[0] and r["subset"] == s
                           and r["region"] == "WT"]) for s in PAPER_ORDER]
    line = next(line for line in text.splitlines() if line.startswith(f"| Dice (%) | WT | {MODELS[0]} |"))
    cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
    assert float(cells[-1]) == pytest.approx(100 * np.mean(per_subset), abs=0.05)
    assert float(cells[3]) == pytest.approx(100 * per_subset[0], abs=0.05)
    assert "| Dice (%) | WT |" in proc.stdout  # the table is printed at the end, with the output paths
    assert str(out / "results.md") in proc.stdout


def test_untrained_model_is_named_with_its_checkpoint_and_command_then_skipped(benchmark_run):
    out, proc, root, _ = benchmark_run
    expected = (_dataset_folder(root, "results") / f"{UNTRAINED}__{PLANS}__{CONFIGURATION}" / "fold_0"
                / "checkpoint_final.pth")
    command = f"nnUNetv2_train 987 {CONFIGURATION} 0 -tr {UNTRAINED} -p {PLANS}"
    assert f"WARNING: skipping {UNTRAINED}" in proc.stderr and str(expected) in proc.stderr
    assert command in proc.stderr and command in (out / "results.md").read_text()
    assert UNTRAINED not in {r["model"] for r in _read_csv(out / "per_case.csv")}


def test_all_subset_is_what_stock_nnunet_predicts_and_is_scored_as_saved(benchmark_run, train_model, tmp_path,
                                                                         monkeypatch):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    out, _, root, cases = benchmark_run
    monkeypatch.setenv("nnUNet_extTrainer", nnunet_env(root)["nnUNet_extTrainer"])
    case = cases[0]
    images = sorted(str(p) for p in (_dataset_folder(root, "raw") / "imagesTr").glob(f"{case}_*.nii.gz"))
    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(train_model(MODELS[0]), (0,), "checkpoint_final.pth")
    predictor.predict_from_files_sequential([images], [str(tmp_path / case)], False, True, None)
    stock = _read(tmp_path / f"{case}.nii.gz")
    ours = _read(out / "predictions" / MODELS[0] / "All" / f"{case}.nii.gz")
    # On CPU the benchmark runs each tile as a batch of two (network/cpu_batching.py): the same
    # network output up to float rounding, so only voxels at a near-tie of two classes may differ.
    assert stock.any() and ours.shape == stock.shape
    assert (ours != stock).mean() <= 1e-3
    reference = _read(_dataset_folder(root, "preprocessed") / "gt_segmentations" / f"{case}.nii.gz")
    wt_ours, wt_ref = ours > 0, reference > 0
    dice = 2 * (wt_ours & wt_ref).sum() / (wt_ours.sum() + wt_ref.sum())
    row = next(r for r in _read_csv(out / "per_case.csv")
               if (r["case"], r["model"], r["subset"], r["region"]) == (case, MODELS[0], "All", "WT"))
    assert float(row["Dice"]) == pytest.approx(dice, abs=1e-9)


def test_masking_reaches_the_network(benchmark_run):
    out, _, _, cases = benchmark_run
    for model in MODELS:
        segs = {s: _read(out / "predictions" / model / s / f"{cases[0]}.nii.gz") for s in PAPER_ORDER}
        distinct = {seg.tobytes() for seg in segs.values()}
        assert len(distinct) >= 2, f"{model}: every subset gave the same segmentation"
        assert not np.array_equal(segs["T1"], segs["All"])


def test_timing_shows_one_preprocessing_per_case_shared_by_both_models(benchmark_run):
    out, _, _, cases = benchmark_run
    timing = _read_csv(out / "timing.csv")
    assert [(r["case"], r["model"]) for r in timing] == [(c, m) for c in cases for m in MODELS]
    for r in timing:
        assert r["preprocessed_by"] == MODELS[0] and r["n_subsets"] == "15"
        assert (r["preprocessing_s"] != "") == (r["model"] == MODELS[0])
        assert float(r["inference_total_s"]) == pytest.approx(15 * float(r["inference_mean_s"]))


def test_wilcoxon_compares_the_reference_with_the_other_model(benchmark_run):
    out, _, _, cases = benchmark_run
    tests = _read_csv(out / "wilcoxon.csv")
    assert {(t["metric"], t["region"]) for t in tests} == {(m, g) for m in ("Dice", "HD95") for g in ("WT", "TC", "ET")}
    for t in tests:
        assert (t["reference"], t["model"], t["n"]) == (MODELS[1], MODELS[0], str(len(cases)))  # unit: the case
        assert 0.0 <= float(t["p"]) <= float(t["p_holm"]) <= 1.0


def test_folder_mode_on_a_test_case_preprocesses_it_once_for_both_models(benchmark_run, tmp_path, monkeypatch):
    _, _, root, _ = benchmark_run
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, nnunet_env(root)[key])
    calls = []
    original = MissingModalityPredictor.preprocess

    def counted(self, image_files, case_id=None):
        calls.append(case_id)
        return original(self, image_files, case_id)

    monkeypatch.setattr(MissingModalityPredictor, "preprocess", counted)
    raw = _dataset_folder(root, "raw")
    case, images = _one_test_case(root, tmp_path)
    out = run_benchmark(987, CONFIGURATION, 0, MODELS, str(tmp_path / "ts"), PLANS, str(images),
                        str(raw / "labelsTs"), device="cpu", disable_tta=True, progress=False)
    assert out["cases"] == [case] and calls == [case]
    assert out["preprocess_calls"] == [(case, MODELS[0])]
    rows = _read_csv(out["per_case_csv"])
    assert len(rows) == 2 * 15 * 3 and {r["case"] for r in rows} == {case}
    assert _read_csv(out["wilcoxon_csv"]) == []  # no MSTKD model and no --reference: no tests, with a note
    text = open(out["results_md"]).read()
    assert "No test: no nnUNetTrainerMSTKD model" in text
    assert f"Cases: 1 (images {images}, references {raw / 'labelsTs'})" in text


def test_several_folds_each_on_its_own_validation_cases(benchmark_run, tmp_path, monkeypatch):
    # Fold 1's models are copies of fold 0's checkpoints (real files; training a second fold would double
    # the suite's training time): what is tested is which model scores which cases and how folds aggregate.
    _, _, root, _ = benchmark_run
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, nnunet_env(root)[key])
    copies = [_dataset_folder(root, "results") / f"{m}__{PLANS}__{CONFIGURATION}" / "fold_1" for m in MODELS]
    for fold_1 in copies:
        fold_1.mkdir(exist_ok=True)
        shutil.copy(fold_1.parent / "fold_0" / "checkpoint_final.pth", fold_1 / "checkpoint_final.pth")
    splits = json.loads((_dataset_folder(root, "preprocessed") / "splits_final.json").read_text())
    try:
        out = run_benchmark(987, CONFIGURATION, [0, 1], MODELS, str(tmp_path / "cv"), PLANS, device="cpu",
                            disable_tta=True, progress=False, reference=MODELS[1])
    finally:
        for fold_1 in copies:  # other tests let nnU-Net find every fold of these models
            shutil.rmtree(fold_1)
    rows = _read_csv(out["per_case_csv"])
    for fold in (0, 1):
        assert {r["case"] for r in rows if r["fold"] == str(fold)} == set(splits[fold]["val"])
    n_cases = len(splits[0]["val"]) + len(splits[1]["val"])
    assert len(rows) == n_cases * 2 * 15 * 3 and out["cases"] == splits[0]["val"] + splits[1]["val"]
    across = out["summary"]["across_folds"]
    assert across["folds"] == ["0", "1"]
    dice = across["results"][MODELS[0]]["WT"]["Dice"]
    for fold in (0, 1):
        fold_rows = [r for r in rows if r["fold"] == str(fold) and r["model"] == MODELS[0] and r["region"] == "WT"]
        per_subset = [np.mean([float(r["Dice"]) for r in fold_rows if r["subset"] == s]) for s in PAPER_ORDER]
        assert dice["per_fold"][str(fold)] == pytest.approx(np.mean(per_subset))
    assert dice["n_folds"] == 2 and dice["sd"] >= 0
    assert {t["n"] for t in _read_csv(out["wilcoxon_csv"])} == {str(n_cases)}
    text = open(out["results_md"]).read()
    assert "folds 0, 1" in text and "## Across folds" in text and "-f 0 1 -tr" in text
    assert f"Cases: {n_cases} (validation cases of folds 0, 1" in text


def test_ensemble_row_is_what_mstkd_predict_predicts_with_those_folds(benchmark_run, tmp_path):
    """Fold 1 is fold 0's checkpoint with perturbed weights, so the ensemble differs from either fold."""
    _, _, root, _ = benchmark_run
    env = nnunet_env(root)
    model = MODELS[1]
    folder = _dataset_folder(root, "results") / f"{model}__{PLANS}__{CONFIGURATION}"
    ckpt = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    g = torch.Generator().manual_seed(0)
    for w in ckpt["network_weights"].values():
        if w.is_floating_point():
            w.add_(0.05 * w.std().nan_to_num() * torch.randn(w.shape, generator=g))
    (folder / "fold_1").mkdir()
    torch.save(ckpt, folder / "fold_1" / "checkpoint_final.pth")
    raw = _dataset_folder(root, "raw")
    case, images = _one_test_case(root, tmp_path)
    try:
        run([bin_path("mstkd_benchmark"), "-d", "987", "-c", CONFIGURATION, "-f", "0", "1", "-p", PLANS, "-tr", model,
             "-i", str(images), "-l", str(raw / "labelsTs"), "--ensemble", "--save_predictions", "-o",
             str(tmp_path / "bench"), "-device", "cpu", "--disable_tta", "--disable_progress_bar"], env)
        run([bin_path("mstkd_predict"), "-i", str(images), "-o", str(tmp_path / "pred"), "-d", "987", "-p", PLANS,
             "-tr", model, "-c", CONFIGURATION, "-f", "0", "1", "--missing", "T2", "--disable_tta", "-device", "cpu",
             "-npp", "1", "-nps", "1"], env)
    finally:
        shutil.rmtree(folder / "fold_1")  # other tests let nnU-Net find every fold of this model
    summary = json.load(open(tmp_path / "bench" / "summary.json"))
    assert summary["models"] == [model, model + "_ensemble"]
    rows = _read_csv(tmp_path / "bench" / "per_case.csv")
    assert {r["fold"] for r in rows if r["model"] == model + "_ensemble"} == {"ensemble"}
    predictions = tmp_path / "bench" / "predictions"
    ours = _read(tmp_path / "pred" / f"{case}.nii.gz")
    ensemble = _read(predictions / "ensemble" / f"{model}_ensemble" / "FL+T1+T1Gd" / f"{case}.nii.gz")
    fold_0 = _read(predictions / "fold_0" / model / "FL+T1+T1Gd" / f"{case}.nii.gz")
    fold_1 = _read(predictions / "fold_1" / model / "FL+T1+T1Gd" / f"{case}.nii.gz")
    # the benchmark pairs CPU tiles (equal up to float rounding): at most 0.1 % of voxels may differ
    assert np.mean(ensemble != ours) <= 1e-3
    assert np.any(fold_0 != fold_1) and (np.any(ensemble != fold_0) or np.any(ensemble != fold_1))


# ---- refusals and helpers (no network runs) ----

def test_refusals_name_what_is_wrong(planned_dataset, tmp_path, monkeypatch):
    root, _ = planned_dataset
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, nnunet_env(root)[key])
    args = (987, CONFIGURATION, 0)
    with pytest.raises(FileNotFoundError, match=f"(?s)None of the trainers.*{UNTRAINED}.*nnUNetv2_train 987"):
        run_benchmark(*args, [UNTRAINED], str(tmp_path), PLANS, device="cpu")
    with pytest.raises(ValueError, match="-i IMAGES and -l LABELS go together"):
        run_benchmark(*args, [UNTRAINED], str(tmp_path), PLANS, images=str(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="more than once"):
        run_benchmark(*args, [UNTRAINED, UNTRAINED], str(tmp_path), PLANS, device="cpu")
    with pytest.raises(ValueError, match="step_size"):
        run_benchmark(*args, [UNTRAINED], str(tmp_path), PLANS, device="cpu", step_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="-device cpu"):
            run_benchmark(*args, [UNTRAINED], str(tmp_path), PLANS)
    monkeypatch.setattr(sys, "argv", ["mstkd_benchmark", "-d", "987", "-c", CONFIGURATION, "-f", "0", "-p", PLANS,
                                      "-tr", UNTRAINED, "-o", str(tmp_path), "-device", "cpu"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1


def test_folder_cases_refuse_incomplete_cases_and_missing_references(planned_dataset, tmp_path):
    root, _ = planned_dataset
    raw = _dataset_folder(root, "raw")
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(raw / "imagesTs", images)
    shutil.copytree(raw / "labelsTs", labels)
    cases = folder_cases(str(images), str(labels), BRATS_CHANNELS, ".nii.gz")
    assert [len(c.images) for c in cases] == [4, 4] and cases[0].images[1].endswith("_0001.nii.gz")
    first = cases[0].case_id
    (labels / f"{first}.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=f"case {first}: file.*{first}.nii.gz"):
        folder_cases(str(images), str(labels), BRATS_CHANNELS, ".nii.gz")
    (images / f"{first}_0001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=f"case {first}: {first}_0001.nii.gz not found.*complete cases"):
        folder_cases(str(images), str(labels), BRATS_CHANNELS, ".nii.gz")
    (images / f"{first}_01.nii.gz").write_bytes(b"")  # the channel's file with a typo in its name
    with pytest.raises(ValueError, match=f"{first}_01.nii.gz look like images but are not channel files"):
        folder_cases(str(images), str(labels), BRATS_CHANNELS, ".nii.gz")


@pytest.mark.parametrize("labels, expected", [
    ({"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}, BRATS_REGIONS),
    ({"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}, BRATS_REGIONS),
    ({"background": 0, "liver": 1, "tumour": 2}, {"liver": (1,), "tumour": (2,)}),
])
def test_evaluation_regions(labels, expected):
    assert evaluation_regions({"labels": labels}) == expected


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(str(target)) as tmp:
        assert tmp.endswith(".md") and tmp != str(target)
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_timing_table_by_hand():
    rows = [{"case": "a", "model": "A", "preprocessing_s": 1.0, "preprocessed_by": "A", "inference_mean_s": 2.0,
             "inference_total_s": 30.0},
            {"case": "a", "model": "B", "preprocessing_s": "", "preprocessed_by": "A", "inference_mean_s": 4.0,
             "inference_total_s": 60.0},
            {"case": "b", "model": "A", "preprocessing_s": 3.0, "preprocessed_by": "A", "inference_mean_s": 1.0,
             "inference_total_s": 15.0},
            {"case": "b", "model": "B", "preprocessing_s": "", "preprocessed_by": "A", "inference_mean_s": 2.0,
             "inference_total_s": 30.0}]
    lines = timing_markdown(rows, ["A", "B"]).splitlines()
    assert lines[2] == "| A | 2.00 | 1.50 | 22.50 |"
    assert lines[3] == "| B | 2.00 (shared, by A) | 3.00 | 45.00 |"
    assert "Preprocessing ran 2 time(s) for 2 case(s)" in lines[5]
