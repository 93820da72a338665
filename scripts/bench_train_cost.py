"""Seconds per training iteration and peak memory of the four main trainers, side by side.

Each trainer runs in its own process (so peak memory is its own) on a synthetic
dataset planned with nnU-Net and its CPU-sized plans, with real batches from nnU-Net's
data loader. The trainers take turns for ``--rounds`` rounds, so a slow spell of a
shared machine hits all of them; the table gives the median over rounds of each
round's median, and "× teacher" is the median of the per-round ratios. CPU seconds
(the process's CPU time, all threads) are given too: on a machine shared with other
jobs they vary less than wall-clock seconds. The
teacher's checkpoint that the MST-KD student needs is the (briefly trained)
teacher of this run. In the student's process the frozen teacher's forward is also
timed alone: no student that distils from it on every step can cost less.
``--ablations`` adds the student with one loss family off each, so the table shows
what each family costs. Prints a Markdown table.

    python scripts/bench_train_cost.py --iterations 20 --rounds 3 [--ablations] [--device cuda]

``--plans`` names the plans (default ``nnUNetPlansCPU``); several plans run interleaved in the same
rounds, each trainer × plans a row, "× teacher" against the teacher of the same plans.
``nnUNetResEncUNetPlansCPU`` (nnU-Net's residual-encoder U-Net at CPU size) is planned when missing::

    python scripts/bench_train_cost.py --plans nnUNetPlansCPU nnUNetResEncUNetPlansCPU

``--full-size`` runs the same at BraTS size instead: cases on BraTS's 240×240×155
grid planned by nnU-Net's default planner (``nnUNetPlans``, no CPU plans), a few
iterations per trainer, whether every loss term stayed finite, then one test case
predicted by ``mstkd_predict`` with T1ce absent (time, peak RSS, output geometry
against the input's)::

    python scripts/bench_train_cost.py --full-size --workdir /tmp/mstkd_full --iterations 2 --warmup 1 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerModalityDropout", "nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD_paper")
#: The student with one loss family switched off each (``--ablations``): what each family costs.
ABLATIONS = ("nnUNetTrainerMSTKD_noMSTKD", "nnUNetTrainerMSTKD_noDMLD", "nnUNetTrainerMSTKD_noGSME")
DATASET_ID = 991
FULL_SIZE_DATASET_ID = 972


def _env(workdir: str) -> dict:
    from nnunetv2_mstkd.env import with_trainers_dir

    env = dict(os.environ, nnUNet_raw=f"{workdir}/raw", nnUNet_preprocessed=f"{workdir}/preprocessed",
               nnUNet_results=f"{workdir}/results", nnUNet_def_n_proc="1")
    env["nnUNet_extTrainer"] = with_trainers_dir(env.get("nnUNet_extTrainer"))
    env.pop("nnUNet_n_proc_DA", None)
    return env


#: CPU planner of each plans identifier ``prepare`` can make (``mstkd_apply_plans -pl``).
CPU_PLANNERS = {"nnUNetPlansCPU": "nnUNetPlannerCPU", "nnUNetResEncUNetPlansCPU": "nnUNetPlannerResEncCPU"}


def _dataset_and_plans(full_size: bool) -> tuple[int, str]:
    return (FULL_SIZE_DATASET_ID, "nnUNetPlans") if full_size else (DATASET_ID, "nnUNetPlansCPU")


def prepare(workdir: str, full_size: bool, plans_list: tuple[str, ...] = ()) -> None:
    """Synthetic dataset and nnU-Net planning, once: 16 cases of 48³ and the CPU plans, or (``full_size``)
    5 training cases and 1 test case on BraTS's grid with nnU-Net's default plans."""
    env = _env(workdir)
    bindir = os.path.dirname(sys.executable)
    dataset, plans = _dataset_and_plans(full_size)
    if not os.path.isdir(f"{workdir}/raw/Dataset{dataset}_SynthBraTS"):
        size = ["--cases", "5", "--test-cases", "1", "--size", "155", "--brats-grid"] if full_size \
            else ["--cases", "16", "--size", "48"]
        # its output goes to stderr: stdout is the Markdown report
        subprocess.run([f"{bindir}/mstkd_synth", "-d", str(dataset), *size], env=env, check=True, stdout=sys.stderr)
    if not os.path.isfile(f"{workdir}/preprocessed/Dataset{dataset}_SynthBraTS/{plans}.json"):
        subprocess.run([f"{bindir}/nnUNetv2_plan_and_preprocess", "-d", str(dataset), "-c", "3d_fullres",
                        "-np", "1", "-npfp", "1"], env=env, check=True, capture_output=True)
    for p in (plans_list or (plans,)) if not full_size else ():
        if not os.path.isfile(f"{workdir}/preprocessed/Dataset{dataset}_SynthBraTS/{p}.json"):
            subprocess.run([f"{bindir}/mstkd_apply_plans", "-d", str(dataset), "-pl", CPU_PLANNERS[p]], env=env,
                           check=True, stdout=sys.stderr)


def timed_steps(trainer, iterations: int, warmup: int) -> dict:
    """Time ``iterations`` ``train_step`` calls of a trainer as nnU-Net sets it up, after ``warmup`` calls.

    Runs ``on_train_start`` and ``on_train_epoch_start`` first; the caller ends the run
    (``on_train_end``). Wall and CPU seconds per step (medians), whether every loss term
    stayed finite, the loss terms' names, peak CUDA memory after the warm-up on a GPU, and
    for a distilling student the frozen teacher's forward alone (after the timed steps, so
    that no batch is held while they run).
    Also used by ``scripts/gpu_check.py``.
    """
    import numpy as np
    import torch

    cuda = trainer.device.type == "cuda"
    trainer.on_train_start()
    trainer.on_train_epoch_start()
    times, cpu_times, finite = [], [], True
    for i in range(warmup + iterations):
        batch = next(trainer.dataloader_train)
        if cuda:
            torch.cuda.synchronize()
            if i == warmup:
                torch.cuda.reset_peak_memory_stats()
        start, cpu_start = time.perf_counter(), time.process_time()
        out = trainer.train_step(batch)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        finite &= all(bool(np.all(np.isfinite(v))) for k, v in out.items() if k.startswith("loss"))
    result = {"median_s": statistics.median(times), "mean_s": statistics.mean(times),
              "cpu_median_s": statistics.median(cpu_times), "finite": bool(finite),
              "terms": sorted(k for k in out if k.startswith("loss")),
              "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
    if getattr(trainer, "teacher", None) is not None:
        result["teacher_forward_s"] = _teacher_forward_seconds(trainer)
    return result


def measure(trainer_name: str, iterations: int, warmup: int, device: str, full_size: bool,
            plans: str | None = None) -> dict:
    """In this process: time ``iterations`` train steps of ``trainer_name`` after ``warmup`` steps."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    dataset, default_plans = _dataset_and_plans(full_size)
    plans = plans or default_plans
    trainer = get_trainer_from_args(str(dataset), "3d_fullres", 0, trainer_name, plans, device=torch.device(device))
    result = timed_steps(trainer, iterations, warmup)
    if trainer_name in ("nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD_paper"):
        # The student of this benchmark distils from this (barely trained) teacher; the full-size run
        # predicts with this student.
        trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))
    result.update(trainer=trainer_name, patch=[int(p) for p in trainer.configuration_manager.patch_size],
                  batch=int(trainer.configuration_manager.batch_size),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    trainer.on_train_end()
    return result


def _teacher_forward_seconds(trainer, repeats: int = 5) -> float:
    """Median seconds of the frozen teacher's forward alone on ``repeats`` batches, as the student's step
    runs it (no gradient, attention maps and features returned): no student that distils from it on every
    step can cost less."""
    import torch

    cuda, seconds = trainer.device.type == "cuda", []
    for _ in range(repeats):
        data = next(trainer.dataloader_train)["data"].to(trainer.device)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(trainer.device.type, enabled=cuda):
            trainer.teacher_forward(data)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def predict_full_size(workdir: str) -> dict:
    """Predict the test case with the student, T1ce absent; time, peak RSS and output geometry."""
    import SimpleITK as sitk

    env = _env(workdir)
    name = f"Dataset{FULL_SIZE_DATASET_ID}_SynthBraTS"
    images, out = f"{workdir}/raw/{name}/imagesTs", f"{workdir}/pred_full_size"
    model = f"{workdir}/results/{name}/nnUNetTrainerMSTKD_paper__nnUNetPlans__3d_fullres"
    cmd = [os.path.join(os.path.dirname(sys.executable), "mstkd_predict"), "-i", images, "-o", out, "-m", model,
           "-f", "0", "--missing", "T1ce", "--disable_tta", "-device", "cpu", "-npp", "1", "-nps", "1",
           "--disable_progress_bar"]
    # a child that reports its own peak RSS and that of its export workers
    code = ("import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"prediction failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss = [int(x) / 1024 for x in next(x for x in proc.stdout.splitlines() if x.startswith("RSS ")).split()[1:]]
    case = sorted(f for f in os.listdir(images) if f.endswith("_0000.nii.gz"))[0][: -len("_0000.nii.gz")]
    a, b = sitk.ReadImage(f"{images}/{case}_0000.nii.gz"), sitk.ReadImage(f"{out}/{case}.nii.gz")
    same = (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection())
    return {"case": case, "seconds": seconds, "rss_mb": rss[0], "workers_rss_mb": rss[1], "size": a.GetSize(),
            "geometry_equal": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/mstkd_cost")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="turns each trainer takes (default 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full-size", action="store_true",
                        help="BraTS-grid cases with nnU-Net's default plans, then one prediction (see above)")
    parser.add_argument("--ablations", action="store_true",
                        help="also the student with one loss family off each (" + ", ".join(ABLATIONS) + ")")
    parser.add_argument("--plans", nargs="+", default=None,
                        help="plans identifiers, interleaved (default nnUNetPlansCPU; with --full-size nnUNetPlans); "
                             "CPU plans: " + ", ".join(CPU_PLANNERS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    plans_list = tuple(args.plans or (_dataset_and_plans(args.full_size)[1],))
    if args.one:
        os.environ.update(_env(workdir), nnUNet_n_proc_DA="0")
        print("RESULT " + json.dumps(measure(args.one, args.iterations, args.warmup, args.device, args.full_size,
                                             plans_list[0])))
        return
    prepare(workdir, args.full_size, plans_list)
    several = len(plans_list) > 1
    # a row per trainer and plans; "name" is the trainer, or "trainer (plans)" with several plans
    jobs = {(f"{t} ({p})" if several else t): (t, p)
            for p in plans_list for t in TRAINERS + (ABLATIONS if args.ablations else ())}
    trainers = tuple(jobs)
    runs: dict[str, list[dict]] = {name: [] for name in trainers}
    failed: dict[str, str] = {}
    for round_index in range(args.rounds):
        for name in trainers:
            if name in failed:
                continue
            print(f"round {round_index + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--workdir", workdir, "--iterations",
                                  str(args.iterations), "--warmup", str(args.warmup), "--device", args.device,
                                  "--one", jobs[name][0], "--plans", jobs[name][1]]
                                 + (["--full-size"] if args.full_size else []),
                                 capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode == -9:
                # the kernel's out-of-memory killer: record it and go on with the other trainers
                failed[name] = "killed by the kernel (out of memory)"
                print(f"{name}: {failed[name]}", file=sys.stderr, flush=True)
                continue
            if out.returncode != 0 or not line:
                sys.exit(f"{name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(line[0][7:]))
    rows = []
    for name in trainers:
        if not runs[name]:
            continue
        teacher = next(n for n, (t, p) in jobs.items() if t == "nnUNetTrainerMSTKDTeacher" and p == jobs[name][1])
        teacher_runs = runs[teacher]
        rows.append({"trainer": name,
                     "median_s": statistics.median(r["median_s"] for r in runs[name]),
                     "mean_s": statistics.mean(r["mean_s"] for r in runs[name]),
                     "ratio": statistics.median(r["median_s"] / t["median_s"]
                                                for r, t in zip(runs[name], teacher_runs)) if teacher_runs else None,
                     "per_round": [r["median_s"] for r in runs[name]],
                     "cpu_s": statistics.median(r["cpu_median_s"] for r in runs[name]),
                     "cpu_ratio": statistics.median(r["cpu_median_s"] / t["cpu_median_s"]
                                                    for r, t in zip(runs[name], teacher_runs)) if teacher_runs
                     else None,
                     "finite": all(r["finite"] for r in runs[name]),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[name]),
                     "peak_cuda_mb": max(r.get("peak_cuda_mb") or 0 for r in runs[name]) or None})
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    first = next(iter(r for v in runs.values() for r in v), None)
    shape = f"patch {'×'.join(map(str, first['patch']))}, batch {first['batch']}" if first else "no trainer ran"
    data = (f"{', '.join(plans_list)} 3d_fullres, 5 synthetic cases on BraTS's 240×240×155 grid"
            if args.full_size else f"{', '.join(plans_list)} 3d_fullres, synthetic 48³ cases")
    print(f"Command: python scripts/bench_train_cost.py{' --full-size' if args.full_size else ''}"
          f"{' --ablations' if args.ablations else ''}{' --plans ' + ' '.join(plans_list) if args.plans else ''}"
          f" --iterations "
          f"{args.iterations} --warmup {args.warmup} --rounds {args.rounds} --device {args.device}")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"Machine: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, torch {torch.__version__}, "
          f"device {args.device}; plans {data} ({shape})\n")
    mem_col = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    print(f"| trainer | median s/iteration | mean s/iteration | × teacher | median s/iteration per round | "
          f"CPU s/iteration | × teacher (CPU) | {mem_col} | loss terms finite |")
    print("|---|---|---|---|---|---|---|---|---|")

    def ratio(x):
        return "–" if x is None else f"{x:.2f}"

    for r in rows:
        mem = r["peak_cuda_mb"] or r["peak_rss_mb"]
        rounds = ", ".join(f"{x:.3f}" for x in r["per_round"])
        print(f"| {r['trainer']} | {r['median_s']:.3f} | {r['mean_s']:.3f} | {ratio(r['ratio'])} | {rounds} | "
              f"{r['cpu_s']:.3f} | {ratio(r['cpu_ratio'])} | {mem:.0f} | {'yes' if r['finite'] else 'NO'} |")
    for name, why in failed.items():
        print(f"| {name} | {why} | | | | | | | |")
    # the teacher's forward alone, for the first plans
    of_first = {t: n for n, (t, p) in jobs.items() if p == plans_list[0]}
    student, teacher_runs = of_first.get("nnUNetTrainerMSTKD_paper"), runs[of_first["nnUNetTrainerMSTKDTeacher"]]
    forward = [r["teacher_forward_s"] for r in runs.get(student, []) if "teacher_forward_s" in r]
    if forward and teacher_runs:
        floor = statistics.median(f / t["median_s"] for f, t in zip(forward, teacher_runs))
        print(f"\nThe frozen teacher's forward alone, as the student's step runs it (no gradient, attention maps "
              f"and features returned; median over the student's runs): {statistics.median(forward):.3f} s, "
              f"{floor:.2f}× a teacher-trainer iteration, so no student that distils from it on every step "
              f"costs less than about {1 + floor:.2f}×.")
    if args.full_size and "nnUNetTrainerMSTKD_paper" not in failed:
        p = predict_full_size(workdir)
        print(f"\nPrediction of test case {p['case']} ({'×'.join(map(str, p['size']))} voxels) by `mstkd_predict` "
              f"with the student, T1ce absent, no mirroring, `-npp 1 -nps 1`: {p['seconds']:.0f} s start-up "
              f"included; peak RSS {p['rss_mb']:.0f} MB (export worker {p['workers_rss_mb']:.0f} MB); output "
              f"geometry (size, spacing, origin, direction) {'equal to' if p['geometry_equal'] else 'DIFFERENT from'}"
              f" the input's.")


if __name__ == "__main__":
    main()
