"""``mstkd_predict`` and :class:`MissingModalityPredictor` against real nnU-Net on the session's trained model."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_mstkd.atomic_io import PARTIAL_MARKER
from nnunetv2_mstkd.inference.predict import main, predict_missing
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import zero_absent_channels

from conftest import CONFIGURATION, PLANS, bin_path, nnunet_env, run

pytestmark = pytest.mark.e2e
TRAINER = "nnUNetTrainer_5ep25it"
CASE = "SynthBraTS_test000"
OTHER = "SynthBraTS_test001"
FAST = {"device": "cpu", "disable_tta": True, "num_processes_preprocessing": 0, "num_processes_segmentation_export": 1,
        "disable_progress_bar": True}


@pytest.fixture(scope="module")
def model(train_model):
    return train_model(TRAINER)


@pytest.fixture(scope="module")
def images_ts(planned_dataset):
    root, dataset_id = planned_dataset
    return next((root / "raw").glob(f"Dataset{dataset_id:03d}_*")) / "imagesTs"


@pytest.fixture(scope="module")
def masked(model):
    return MissingModalityPredictor.from_model_folder(model, folds=(0,), device="cpu", use_mirroring=False,
                                                      allow_tqdm=False)


def _copy_case(images_ts, case, folder, channels=(0, 1, 2, 3), rename=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i in channels:
        shutil.copy(images_ts / f"{case}_{i:04d}.nii.gz", folder / f"{rename or case}_{i:04d}.nii.gz")
    return folder


def _seg(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _no_partial_files(folder):
    return not [f for f in os.listdir(folder) if PARTIAL_MARKER in f]


def test_missing_option_equals_absent_file_equals_training_time_masking(model, images_ts, masked, tmp_path):
    full = _copy_case(images_ts, CASE, tmp_path / "full")
    cut = _copy_case(images_ts, CASE, tmp_path / "cut", channels=(0, 2, 3))
    lines = []
    r1 = predict_missing(str(full), str(tmp_path / "o1"), model, missing=["t1gd"], log=lines.append, **FAST)
    r2 = predict_missing(str(cut), str(tmp_path / "o2"), model, log=lines.append, **FAST)
    assert r1["absent"] == r2["absent"] == {CASE: ["T1ce"]} and r1["predicted"] == r2["predicted"] == [CASE]
    assert f"[1/1] case {CASE}: predicting without T1ce (--missing)" in lines
    assert f"[1/1] case {CASE}: predicting without T1ce (file {CASE}_0001.nii.gz absent)" in lines
    seg_option, seg_absent = _seg(tmp_path / "o1" / f"{CASE}.nii.gz"), _seg(tmp_path / "o2" / f"{CASE}.nii.gz")
    assert np.array_equal(seg_option, seg_absent)

    # training-time tensor: nnU-Net's preprocessing of the complete case, then the channel zeroed
    stock = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, allow_tqdm=False)
    stock.initialize_from_trained_model_folder(model, (0,))
    preprocessor = stock.configuration_manager.preprocessor_class(verbose=False)
    files = [str(full / f"{CASE}_{i:04d}.nii.gz") for i in range(4)]
    data, _, props = preprocessor.run_case(files, None, stock.plans_manager, stock.configuration_manager,
                                           stock.dataset_json)
    present = np.array([True, False, True, True])
    x = zero_absent_channels(torch.from_numpy(data), present)
    logits_ref = stock.predict_logits_from_preprocessed_data(x)
    seg_ref = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits_ref, stock.plans_manager, stock.configuration_manager, stock.label_manager, props)
    assert np.array_equal(seg_option, seg_ref)
    # and the pieces: the same crop and tensor from the file-less case, the same logits
    case = masked.preprocess([files[0], None, files[2], files[3]], CASE)
    assert case.properties["bbox_used_for_cropping"] == props["bbox_used_for_cropping"]
    assert torch.equal(case.data, x) and not case.data[1].any()
    assert torch.equal(masked.predict_logits(case), logits_ref)
    complete = masked.preprocess(files, CASE)
    assert torch.equal(masked.predict_logits(complete, present=present), logits_ref)
    assert np.array_equal(masked.segmentation(complete, logits_ref), seg_ref)
    # the masking is not vacuous: the complete case gives other logits
    assert not torch.equal(masked.predict_logits(complete), logits_ref)


def test_present_is_anded_with_the_case_and_validated(images_ts, masked):
    files = [str(images_ts / f"{CASE}_{i:04d}.nii.gz") for i in range(4)]
    case = masked.preprocess([files[0], None, None, files[3]], CASE)
    assert case.present.tolist() == [True, False, False, True]
    assert masked.presence(case, ["T1", "T1Gd", "t2f"]).tolist() == [True, False, False, True]
    assert masked.presence(case, [0]).tolist() == [True, False, False, False]
    assert masked.presence(case, np.array([False, True, True, True])).tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="no channel left"):
        masked.predict_logits(case, present=["T1ce", "T2"])
    with pytest.raises(ValueError, match="Valid channels: 0=T1, 1=T1ce, 2=T2, 3=FLAIR"):
        masked.presence(case, ["T3"])
    with pytest.raises(ValueError, match="got 3 channel files but the model has 4"):
        masked.preprocess(files[:3])


def test_preprocessing_key_ignores_network_fields_only(model, masked, tmp_path):
    def variant(name, edit):
        folder = tmp_path / name
        (folder / "fold_0").mkdir(parents=True)
        shutil.copy(os.path.join(model, "dataset.json"), folder)
        shutil.copy(os.path.join(model, "fold_0", "checkpoint_final.pth"), folder / "fold_0")
        plans = json.load(open(os.path.join(model, "plans.json")))
        edit(plans["configurations"][CONFIGURATION])
        json.dump(plans, open(folder / "plans.json", "w"))
        return MissingModalityPredictor.from_model_folder(str(folder), device="cpu").preprocessing_key()

    assert masked.preprocessing_key() == MissingModalityPredictor.from_model_folder(model).preprocessing_key()
    assert variant("patch", lambda c: c.update(patch_size=[16, 16, 16], batch_size=5)) == masked.preprocessing_key()
    assert variant("norm", lambda c: c.update(use_mask_for_norm=[False] * 4)) != masked.preprocessing_key()
    assert variant("spacing", lambda c: c.update(spacing=[1.5, 1.5, 1.5])) != masked.preprocessing_key()


def test_cli_without_missing_channels_equals_stock_nnunet_predict(model, planned_dataset, images_ts, tmp_path):
    root, dataset_id = planned_dataset
    env = nnunet_env(root)
    flags = ["-d", str(dataset_id), "-p", PLANS, "-tr", TRAINER, "-c", CONFIGURATION, "-f", "0", "--disable_tta",
             "-device", "cpu", "-npp", "1", "-nps", "1"]
    run([bin_path("nnUNetv2_predict"), "-i", str(images_ts), "-o", str(tmp_path / "stock"), *flags], env)
    proc = run([bin_path("mstkd_predict"), "-i", str(images_ts), "-o", str(tmp_path / "ours"), *flags], env)
    assert f"[1/2] case {CASE}: all channels present" in proc.stdout and f"[2/2] case {OTHER}" in proc.stdout
    for case in (CASE, OTHER):
        a, b = sitk.ReadImage(str(tmp_path / "stock" / f"{case}.nii.gz")), sitk.ReadImage(
            str(tmp_path / "ours" / f"{case}.nii.gz"))
        assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
        assert len(np.unique(sitk.GetArrayFromImage(a))) > 1  # a real segmentation, not an empty one
        assert (a.GetSpacing(), a.GetOrigin(), a.GetDirection()) == (b.GetSpacing(), b.GetOrigin(), b.GetDirection())
    for name in ("dataset.json", "plans.json"):
        assert json.load(open(tmp_path / "stock" / name)) == json.load(open(tmp_path / "ours" / name))
    stock_args = json.load(open(tmp_path / "stock" / "predict_from_raw_data_args.json"))
    our_args = json.load(open(tmp_path / "ours" / "predict_from_raw_data_args.json"))
    assert our_args["num_processes_segmentation_export"] == stock_args["num_processes_segmentation_export"] == 1
    assert json.load(open(tmp_path / "ours" / "missing_modalities.json"))["cases"] == {CASE: [], OTHER: []}
    assert _no_partial_files(tmp_path / "ours")


def test_cli_bad_cases_fail_loudly_and_the_others_are_predicted(model, images_ts, tmp_path, capsys):
    inp = _copy_case(images_ts, OTHER, tmp_path / "in", channels=(0, 2, 3))
    _copy_case(images_ts, CASE, inp, channels=(1,), rename="lonely")  # only T1ce, which --missing removes
    _copy_case(images_ts, CASE, inp, channels=(0,), rename="mism")
    img = sitk.ReadImage(str(images_ts / f"{CASE}_0002.nii.gz"))
    img.SetSpacing((1.0, 1.0, 1.2))
    sitk.WriteImage(img, str(inp / "mism_0002.nii.gz"))
    _copy_case(images_ts, CASE, inp, channels=(0, 3), rename="nan")
    img = sitk.ReadImage(str(images_ts / f"{CASE}_0002.nii.gz"))
    array = sitk.GetArrayFromImage(img)
    array[0, :2, :2] = np.nan
    nan_img = sitk.GetImageFromArray(array)
    nan_img.CopyInformation(img)
    sitk.WriteImage(nan_img, str(inp / "nan_0002.nii.gz"))
    out = tmp_path / "out"
    # one preprocessing worker process: its errors must come back per case
    with pytest.raises(SystemExit) as info:
        main(["-i", str(inp), "-o", str(out), "-m", model, "-f", "0", "--disable_tta", "-device", "cpu",
              "-npp", "1", "-nps", "1", "--missing", "T1c", "--disable_progress_bar"])
    assert info.value.code == 1
    stdout, stderr = capsys.readouterr()
    assert "3 case(s) failed: lonely, mism, nan" in stderr
    assert f"case nan: {inp / 'nan_0002.nii.gz'} contains 4 NaN and 0 Inf voxels" in stderr
    assert "case lonely: every channel is absent (T1ce excluded with --missing)" in stderr
    assert "lonely_0000.nii.gz, lonely_0001.nii.gz, lonely_0002.nii.gz, lonely_0003.nii.gz" in stderr
    assert "case mism: channel T2 disagrees with channel T1 in spacing" in stderr
    assert str(inp / "mism_0000.nii.gz") in stderr and str(inp / "mism_0002.nii.gz") in stderr
    assert f"case {OTHER}: predicting without T1ce (file {OTHER}_0001.nii.gz absent)" in stdout
    assert sorted(f for f in os.listdir(out) if f.endswith(".nii.gz")) == [f"{OTHER}.nii.gz"]
    record = json.load(open(out / "missing_modalities.json"))
    assert record["missing"] == ["T1ce"] and record["cases"][OTHER] == ["T1ce"]
    assert record["cases"]["mism"] == ["T1ce", "FLAIR"] and set(record["failed"]) == {"lonely", "mism", "nan"}


def test_unknown_missing_channel_fails_before_any_work(model, images_ts, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["-i", str(images_ts), "-o", str(tmp_path / "out"), "-m", model, "-f", "0", "-device", "cpu",
              "--missing", "T1ce", "T3"])
    assert info.value.code == 2
    assert "Unknown channel 'T3'. Valid channels: 0=T1, 1=T1ce, 2=T2, 3=FLAIR" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_continue_prediction_skips_finished_cases(model, images_ts, tmp_path):
    inp = _copy_case(images_ts, OTHER, _copy_case(images_ts, CASE, tmp_path / "in"))
    out = tmp_path / "out"
    assert predict_missing(str(inp), str(out), model, **FAST)["predicted"] == [CASE, OTHER]
    stamp = os.stat(out / f"{CASE}.nii.gz").st_mtime_ns
    os.remove(out / f"{OTHER}.nii.gz")
    again = predict_missing(str(inp), str(out), model, continue_prediction=True, **FAST)
    assert again["skipped"] == [CASE] and again["predicted"] == [OTHER]
    assert os.stat(out / f"{CASE}.nii.gz").st_mtime_ns == stamp and _no_partial_files(out)


def test_cli_every_nnunet_flag_gives_stock_outputs(model, planned_dataset, images_ts, tmp_path):
    """The flags of nnUNetv2_predict 2.8.1 reach nnU-Net's own loop: outputs equal to the stock command's."""
    root, dataset_id = planned_dataset
    env = nnunet_env(root)
    flags = ["-d", str(dataset_id), "-p", PLANS, "-tr", TRAINER, "-c", CONFIGURATION, "-f", "0", "--disable_tta",
             "-device", "cpu", "-npp", "1", "-nps", "2", "-step_size", "0.75", "-chk", "checkpoint_best.pth",
             "--save_probabilities", "--not_on_device", "--disable_progress_bar", "--verbose"]
    run([bin_path("nnUNetv2_predict"), "-i", str(images_ts), "-o", str(tmp_path / "stock"), *flags], env)
    for part in ("0", "1"):  # two parts into one folder, as two jobs would
        run([bin_path("mstkd_predict"), "-i", str(images_ts), "-o", str(tmp_path / "ours"), *flags,
             "-num_parts", "2", "-part_id", part], env)
    parts = [json.load(open(tmp_path / "ours" / f"missing_modalities_part{k}.json"))["cases"] for k in (0, 1)]
    assert parts == [{CASE: []}, {OTHER: []}]
    args = json.load(open(tmp_path / "ours" / "predict_from_raw_data_args.json"))
    assert (args["num_parts"], args["part_id"], args["save_probabilities"]) == (2, 1, True)
    for case in (CASE, OTHER):
        assert np.array_equal(_seg(tmp_path / "stock" / f"{case}.nii.gz"), _seg(tmp_path / "ours" / f"{case}.nii.gz"))
        a, b = np.load(tmp_path / "stock" / f"{case}.npz"), np.load(tmp_path / "ours" / f"{case}.npz")
        assert np.array_equal(a["probabilities"], b["probabilities"])
        assert (tmp_path / "ours" / f"{case}.pkl").is_file()
    assert _no_partial_files(tmp_path / "ours")
    # --continue_prediction through the CLI: nothing left to do
    proc = run([bin_path("mstkd_predict"), "-i", str(images_ts), "-o", str(tmp_path / "ours"), *flags,
                "--continue_prediction"], env)
    assert "done: 0 predicted, 2 skipped, 0 failed" in proc.stdout


def test_previous_stage_segmentation_is_appended_as_nnunet_does(model, masked, images_ts, tmp_path):
    """-prev_stage_predictions: our iterator's item equals nnU-Net's own for a case with a previous-stage mask."""
    from nnunetv2.inference.data_iterators import preprocessing_iterator_fromfiles

    from nnunetv2_mstkd.inference.case_files import find_cases
    from nnunetv2_mstkd.inference.data_iterator import Job, absent_channel_iterator

    files = [str(images_ts / f"{CASE}_{i:04d}.nii.gz") for i in range(4)]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(files[0])) > np.percentile(
        sitk.GetArrayFromImage(sitk.ReadImage(files[0])), 90)
    seg = sitk.GetImageFromArray(labels.astype(np.uint8) * 2)
    seg.CopyInformation(sitk.ReadImage(files[0]))
    seg_file = str(tmp_path / f"{CASE}.nii.gz")
    sitk.WriteImage(seg, seg_file)
    p = masked
    (stock,) = list(preprocessing_iterator_fromfiles([files], [seg_file], [None], p.plans_manager, p.dataset_json,
                                                     p.configuration_manager, 1))
    (case,) = find_cases(str(images_ts), p.channel_names, ".nii.gz")[:1]
    failures = []
    (ours,) = list(absent_channel_iterator([Job(case, seg_file, None)], p.plans_manager, p.configuration_manager,
                                           p.dataset_json, 0, lambda c, m: failures.append(m)))
    n_foreground = len(p.label_manager.foreground_labels)
    assert ours["data"].shape[0] == 4 + n_foreground and ours["data"][4:].sum() > 0 and not failures
    assert torch.equal(ours["data"], stock["data"])


def test_expected_accuracy_reports_overlays_and_index(model, images_ts, tmp_path):
    from test_expected_accuracy import hand_summary

    summary = hand_summary(TRAINER)
    summary["benchmark"].update(dataset=os.path.basename(os.path.dirname(model)),
                                labels=json.load(open(os.path.join(model, "dataset.json")))["labels"])
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "summary.json").write_text(json.dumps(summary))
    inp = _copy_case(images_ts, OTHER, _copy_case(images_ts, CASE, tmp_path / "in", channels=(0, 2, 3)))
    lines = []
    result = predict_missing(str(inp), str(tmp_path / "out"), model, expected=str(bench), overlays=True,
                             log=lines.append, **FAST)
    assert result["predicted"] == [CASE, OTHER]
    report = json.load(open(tmp_path / "out" / f"{CASE}_report.json"))
    assert report["absent"] == ["T1ce"] and report["expected"]["ET"]["Dice"]["mean"] == pytest.approx(0.10)
    assert report["acquire"][0]["channel"] == "T1ce" and report["benchmark"]["n_cases"] == 42
    assert any(line.startswith(f"case {CASE}: ET: expected Dice 10 ± 10 without T1ce") for line in lines)
    assert json.load(open(tmp_path / "out" / f"{OTHER}_report.json"))["absent"] == []
    for case in (CASE, OTHER):
        assert (tmp_path / "out" / f"{case}_overlay.png").stat().st_size > 10_000
    index = (tmp_path / "out" / "report.md").read_text()
    assert f"[overlay]({CASE}_overlay.png)" in index and f"[report]({OTHER}_report.json)" in index
    assert _no_partial_files(tmp_path / "out")

    # a benchmark of another model is refused before anything is predicted or written
    summary["benchmark"]["plans"] = "nnUNetPlans"
    (bench / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="plans: benchmark 'nnUNetPlans', model 'nnUNetPlansCPU'"):
        predict_missing(str(inp), str(tmp_path / "out2"), model, expected=str(bench), **FAST)
    assert not (tmp_path / "out2").exists()


def test_a_misnamed_channel_file_is_refused_before_any_work_unless_skipped(model, images_ts, tmp_path):
    folder = _copy_case(images_ts, CASE, tmp_path / "in", channels=(0, 2, 3))
    shutil.copy(images_ts / f"{CASE}_0001.nii.gz", folder / f"{CASE}_001.nii.gz")  # a typo: three digits
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"{CASE}_001.nii.gz look like images but are not channel files") as info:
        predict_missing(str(folder), str(out), model, **FAST)
    assert "--allow_unrecognised_files" in str(info.value) and not out.exists()
    lines = []
    result = predict_missing(str(folder), str(out), model, allow_unrecognised_files=True, log=lines.append, **FAST)
    assert result["absent"] == {CASE: ["T1ce"]}
    assert any(f"{CASE}_001.nii.gz is not a channel file" in line for line in lines)
    record = json.loads((out / "missing_modalities.json").read_text())
    assert record["reasons"] == {CASE: {"T1ce": f"file {CASE}_0001.nii.gz absent"}}
    predict_missing(str(folder), str(tmp_path / "out2"), model, missing=["FLAIR"], allow_unrecognised_files=True,
                    **FAST)
    record = json.loads((tmp_path / "out2" / "missing_modalities.json").read_text())
    assert record["reasons"] == {CASE: {"T1ce": f"file {CASE}_0001.nii.gz absent", "FLAIR": "--missing"}}
