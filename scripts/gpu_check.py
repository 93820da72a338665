"""The GPU check: BraTS-geometry data, nnU-Net's default plans, AMP training steps, compile off and on, prediction.

On a CUDA machine (``bash scripts/gpu_check.sh``), within about 8 minutes:

1. synthesises BraTS-geometry cases (``mstkd_synth --brats-grid --size 155``) and plans them with
   nnU-Net's default planner (``nnUNetv2_plan_and_preprocess``, no CPU plans);
2. for the teacher trainer, the student and the modality-dropout baseline, with ``nnUNet_compile``
   off and on: nnU-Net's own trainer set-up and data loading, a few warm-up steps, then timed
   ``train_step`` calls (AMP, as nnU-Net trains on CUDA); seconds per iteration, peak GPU memory
   (``torch.cuda.max_memory_allocated``) and whether every loss term stayed finite;
3. predicts the test cases with ``nnUNetv2_predict`` twice and ``mstkd_predict`` once on the GPU with
   the teacher's checkpoint, nothing missing, and counts differing voxels: ``mstkd_predict`` against
   ``nnUNetv2_predict`` must differ by no more than ``nnUNetv2_predict`` differs from itself (GPU
   kernels are not bit-for-bit repeatable);
4. plans nnU-Net's residual-encoder preset (``-pl nnUNetPlannerResEncM``, ``nnUNetResEncUNetMPlans``; the dry
   run: ``nnUNetPlannerResEncCPU``) and times the same three trainers on it, compile off;
5. trains ``nnUNetTrainerMSTKD_1ep10it`` through nnU-Net's own ``nnUNetv2_train`` (compile on where
   there is CUDA; ``MSTKD_TEACHER`` names step 2's teacher-trainer checkpoint) and predicts the test
   cases with it by ``mstkd_predict --missing T1ce``;
6. writes a Markdown report (``--out``).

cuDNN's autotuner is on, as ``nnUNetv2_train`` sets it. It uses the Python that runs it (its torch
included): on a machine without a package index, install the project from an offline bundle
(``scripts/make_bundle.py``) into that Python and run this script with it.

``--dry-run`` runs the same steps on the CPU at toy size (32³ cases, the CPU plans, one step,
compile off only), so the test suite keeps the script from rotting.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import SimpleITK as sitk
import torch
from bench_train_cost import timed_steps  # this script's folder is on sys.path

BIN = os.path.dirname(sys.executable)
DATASET = 970
TRAINERS = ("nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD_paper", "nnUNetTrainerModalityDropout")


def _run(cmd: list[str], env: dict, log) -> None:
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def time_trainer(trainer_name: str, plans: str, device: torch.device, compile_on: bool, warmup: int,
                 steps: int, dataset: int = DATASET) -> dict:
    """Set a trainer up as nnU-Net does and time ``steps`` training steps after ``warmup``."""
    os.environ["nnUNet_compile"] = "true" if compile_on else "false"
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(dataset), "3d_fullres", 0, trainer_name, plans, device=device)
    trainer.num_epochs = 1
    try:
        timed = timed_steps(trainer, steps, warmup)
    finally:
        trainer.on_train_end()  # nnU-Net's own: writes checkpoint_final.pth (the student's teacher), stops loaders
    peak = timed["peak_cuda_mb"] / 1024 if timed["peak_cuda_mb"] is not None else float("nan")
    return {"trainer": trainer_name, "plans": plans, "compile": compile_on,
            "patch": list(trainer.configuration_manager.patch_size),
            "batch": trainer.configuration_manager.batch_size, "s_per_it": timed["median_s"],
            "peak_gib": peak, "finite": timed["finite"], "terms": timed["terms"],
            "teacher_forward_s": timed.get("teacher_forward_s")}


def differing_voxels(folder_a: str, folder_b: str) -> tuple[int, int]:
    """``(differing voxels, voxels)`` over the segmentations of two prediction folders (same file names)."""
    differ = total = 0
    for name in sorted(f for f in os.listdir(folder_a) if f.endswith(".nii.gz")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder_a, name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder_b, name)))
        if a.shape != b.shape:
            return -1, a.size
        differ += int(np.count_nonzero(a != b))
        total += a.size
    return differ, total


def trainer_table(rows: list[dict]) -> list[str]:
    """The timing table of some rows, then the student / teacher-trainer ratios per compile setting."""
    lines = ["| trainer | compile | patch | batch | s / iteration | peak GPU memory (GiB) | loss terms finite |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['trainer']} | {'on' if r['compile'] else 'off'} | {'×'.join(map(str, r['patch']))} | "
                     f"{r['batch']} | {r['s_per_it']:.3f} | {r['peak_gib']:.2f} | {'yes' if r['finite'] else 'NO'} |")
    teacher = {r["compile"]: r for r in rows if r["trainer"] == TRAINERS[0]}
    for r in rows:
        if r["trainer"] == TRAINERS[1] and r["compile"] in teacher:
            t = teacher[r["compile"]]
            lines.append(f"\nStudent / teacher trainer, compile {'on' if r['compile'] else 'off'}: "
                         f"{r['s_per_it'] / t['s_per_it']:.2f}× time, "
                         f"{r['peak_gib'] / t['peak_gib']:.2f}× peak memory; the frozen teacher's forward "
                         f"alone {r['teacher_forward_s'] / t['s_per_it']:.2f}× (the floor of any distilling student).")
    return lines


def report(rows: list[dict], predict_diff: dict, predict_s: dict, header: str, end_to_end: str) -> str:
    lines = [f"# GPU check{' (dry run on CPU)' if 'dry run' in header else ''}", "", header, ""]
    by_plans: dict[str, list[dict]] = {}
    for r in rows:
        by_plans.setdefault(r["plans"], []).append(r)
    for i, (plans, plan_rows) in enumerate(by_plans.items()):
        lines += ([] if i == 0 else ["", f"Residual-encoder preset, plans {plans}:", ""]) + trainer_table(plan_rows)
    own, ours, total = predict_diff["nnunet_vs_nnunet"], predict_diff["mstkd_vs_nnunet"], predict_diff["voxels"]
    lines += ["", f"Prediction of the test cases with the teacher's checkpoint, nothing missing: mstkd_predict "
              f"{predict_s['mstkd_predict']:.1f} s, nnUNetv2_predict {predict_s['nnUNetv2_predict']:.1f} s. "
              f"Differing voxels of {total}: nnUNetv2_predict against itself (second run) {own}, mstkd_predict "
              f"against nnUNetv2_predict {ours}: {'within' if 0 <= ours <= own else 'NOT within'} nnU-Net's own "
              f"run-to-run difference.", "", end_to_end]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="toy size on the CPU (what the test suite runs)")
    p.add_argument("--work", default="/tmp/mstkd_gpu_check", help="work folder (nnU-Net's three folders)")
    p.add_argument("--out", default="gpu_check.md", help="the Markdown report")
    p.add_argument("--cases", type=int, default=5, help="training cases, at least 5 for nnU-Net's split (default 5)")
    p.add_argument("--steps", type=int, default=10, help="timed iterations per trainer (default 10)")
    p.add_argument("--dataset", type=int, default=DATASET,
                   help=f"synthetic dataset ID in the work folder, made when missing (default {DATASET})")
    args = p.parse_args()
    dataset = args.dataset
    dry = args.dry_run
    device = torch.device("cpu" if dry else "cuda")
    if not dry and not torch.cuda.is_available():
        sys.exit("No CUDA device here; run with --dry-run to check the script on the CPU.")
    if device.type == "cuda":  # as nnUNetv2_train sets them
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    work = os.path.abspath(args.work)
    env = dict(os.environ, nnUNet_raw=f"{work}/raw", nnUNet_preprocessed=f"{work}/preprocessed",
               nnUNet_results=f"{work}/results", nnUNet_def_n_proc="1" if dry else "4")
    from nnunetv2_mstkd.env import with_trainers_dir

    env["nnUNet_extTrainer"] = with_trainers_dir(env.get("nnUNet_extTrainer"))
    os.environ.update(env)
    log = print
    if not os.path.isdir(f"{work}/raw/Dataset{dataset}_SynthBraTS"):
        # the dry run keeps small cubes (the BraTS-grid writer has its own test): the planning stays quick
        size = ["--size", "32"] if dry else ["--size", "155", "--brats-grid"]
        _run([f"{BIN}/mstkd_synth", "-d", str(dataset), "--cases", str(5 if dry else args.cases), "--test-cases",
              "1" if dry else "2", "--seed", "11", *size], env, log)
    plans = "nnUNetPlansCPU" if dry else "nnUNetPlans"
    if not os.path.isfile(f"{work}/preprocessed/Dataset{dataset}_SynthBraTS/{plans}.json"):
        n = "1" if dry else "4"
        _run([f"{BIN}/nnUNetv2_plan_and_preprocess", "-d", str(dataset), "-c", "3d_fullres", "-np", n, "-npfp", n],
             env, log)
        if dry:
            _run([f"{BIN}/mstkd_apply_plans", "-d", str(dataset)], env, log)
    rows = []
    if dry:  # no augmentation worker processes on the CPU (set only now: nnU-Net's planning fails with it)
        os.environ["nnUNet_n_proc_DA"] = "0"
    for compile_on in ((False,) if dry else (False, True)):
        for name in TRAINERS:
            rows.append(time_trainer(name, plans, device, compile_on, warmup=0 if dry else 3,
                                     steps=1 if dry else args.steps, dataset=dataset))
            log(f"{rows[-1]}")
    # nnU-Net's residual-encoder preset M (the CPU-sized ResEnc plans in the dry run): plans only, shared data
    resenc = "nnUNetResEncUNetPlansCPU" if dry else "nnUNetResEncUNetMPlans"
    if not os.path.isfile(f"{work}/preprocessed/Dataset{dataset}_SynthBraTS/{resenc}.json"):
        if dry:
            _run([f"{BIN}/mstkd_apply_plans", "-d", str(dataset), "-pl", "nnUNetPlannerResEncCPU"], env, log)
        else:
            _run([f"{BIN}/nnUNetv2_plan_experiment", "-d", str(dataset), "-pl", "nnUNetPlannerResEncM"], env, log)
    # (the dry run times the teacher trainer and the student only: the dropout baseline adds no code path)
    for name in TRAINERS[:2] if dry else TRAINERS:
        rows.append(time_trainer(name, resenc, device, False, warmup=0 if dry else 3, steps=1 if dry else args.steps,
                                 dataset=dataset))
        log(f"{rows[-1]}")
    model = f"{work}/results/Dataset{dataset}_SynthBraTS/{TRAINERS[0]}__{plans}__3d_fullres"
    images = f"{work}/raw/Dataset{dataset}_SynthBraTS/imagesTs"
    flags = ["-m", model, "-f", "0", "-device", device.type, "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    seconds = {}
    for command, out in (("nnUNetv2_predict_from_modelfolder", "pred_nnunet"), ("mstkd_predict", "pred_mstkd"),
                         ("nnUNetv2_predict_from_modelfolder", "pred_nnunet_again")):
        start = time.perf_counter()
        _run([f"{BIN}/{command}", "-i", images, "-o", f"{work}/{out}", *flags], env, log)
        seconds.setdefault("nnUNetv2_predict" if command.startswith("nnUNet") else command, time.perf_counter() - start)
    own, total = differing_voxels(f"{work}/pred_nnunet", f"{work}/pred_nnunet_again")
    ours, _ = differing_voxels(f"{work}/pred_nnunet", f"{work}/pred_mstkd")
    first = sorted(f for f in os.listdir(f"{work}/pred_mstkd") if f.endswith(".nii.gz"))[0]
    geometry_ok = sitk.ReadImage(f"{work}/pred_mstkd/{first}").GetSize() == ((32, 32, 32) if dry else (240, 240, 155))
    predict_ok = geometry_ok and 0 <= ours <= own
    # the whole workflow through nnU-Net's own command, then a prediction without T1ce on its model
    student = "nnUNetTrainerMSTKD_1ep10it"
    # its teacher: the teacher trainer's checkpoint of step 2 (the default teacher, _noKD, is not trained here)
    train_env = dict(env, nnUNet_compile="false" if dry else "true", nnUNet_n_proc_DA="0" if dry else "4",
                     MSTKD_TEACHER=f"{work}/results/Dataset{dataset}_SynthBraTS/{TRAINERS[0]}__{plans}__3d_fullres")
    start = time.perf_counter()
    _run([f"{BIN}/nnUNetv2_train", str(dataset), "3d_fullres", "0", "-p", plans, "-tr", student,
          "-device", device.type], train_env, log)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    _run([f"{BIN}/mstkd_predict", "-i", images, "-o", f"{work}/pred_student_noT1ce", "-m",
          f"{work}/results/Dataset{dataset}_SynthBraTS/{student}__{plans}__3d_fullres", "-f", "0", "--missing",
          "T1ce", "-device", device.type, "-npp", "1", "-nps", "1", "--disable_progress_bar"], env, log)
    absent = json.load(open(f"{work}/pred_student_noT1ce/missing_modalities.json"))["cases"]
    end_to_end_ok = bool(absent) and all(v == ["T1ce"] for v in absent.values())
    end_to_end = (f"`nnUNetv2_train {dataset} 3d_fullres 0 -p {plans} -tr {student}` with nnUNet_compile "
                  f"{train_env['nnUNet_compile']}: {trained:.0f} s; `mstkd_predict --missing T1ce` with its model: "
                  f"{time.perf_counter() - start:.0f} s, {len(absent)} cases predicted without T1ce"
                  f"{'' if end_to_end_ok else ' (FAILED)'}.")
    n_cases = json.load(open(f"{work}/raw/Dataset{dataset}_SynthBraTS/dataset.json"))["numTraining"]
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none (dry run on the CPU)"
    header = (f"Machine: {platform.node()}, GPU {gpu}; torch {torch.__version__}. "
              f"Command: `python scripts/gpu_check.py{' --dry-run' if dry else ''} --steps {args.steps}"
              f"{'' if dataset == DATASET else f' --dataset {dataset}'}`. "
              f"Data: {n_cases} synthetic cases "
              f"{'of 32³ voxels' if dry else 'on BraTS’s 240×240×155 grid'}, plans {plans}.")
    text = report(rows, {"nnunet_vs_nnunet": own, "mstkd_vs_nnunet": ours, "voxels": total}, seconds,
                  header + (" (dry run)" if dry else ""), end_to_end)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    if not (predict_ok and end_to_end_ok and all(r["finite"] for r in rows)):
        sys.exit(1)


if __name__ == "__main__":
    main()
