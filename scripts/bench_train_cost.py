"""Seconds per training iteration and peak memory of the four main trainers, side by side.

Each trainer runs in its own process (so peak memory is its own) on a synthetic
dataset planned with nnU-Net and the CPU preset, with real batches from nnU-Net's
data loader. The trainers take turns for ``--rounds`` rounds, so a slow spell of a
shared machine hits all of them; the table gives the median over rounds of each
round's median, and "× teacher" is the median of the per-round ratios. CPU seconds
(the process's CPU time, all threads) are given too: on a machine shared with other
jobs they vary less than wall-clock seconds. The
teacher's checkpoint that the MST-KD student needs is the (briefly trained)
teacher of this run. Prints a Markdown table.

    python scripts/bench_train_cost.py --workdir /tmp/mstkd_cost --iterations 20 --rounds 3 [--device cuda]
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

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerModalityDropout", "nnUNetTrainerMSTKDTeacher", "nnUNetTrainerMSTKD")
DATASET_ID = 991


def _env(workdir: str) -> dict:
    from nnunetv2_mstkd.env import with_trainers_dir

    env = dict(os.environ, nnUNet_raw=f"{workdir}/raw", nnUNet_preprocessed=f"{workdir}/preprocessed",
               nnUNet_results=f"{workdir}/results", nnUNet_def_n_proc="1")
    env["nnUNet_extTrainer"] = with_trainers_dir(env.get("nnUNet_extTrainer"))
    env.pop("nnUNet_n_proc_DA", None)
    return env


def prepare(workdir: str) -> None:
    """Synthetic dataset (16 cases of 48³), nnU-Net planning and the CPU preset, once."""
    env = _env(workdir)
    bindir = os.path.dirname(sys.executable)
    if not os.path.isdir(f"{workdir}/raw/Dataset{DATASET_ID}_SynthBraTS"):
        subprocess.run([f"{bindir}/mstkd_synth", "-d", str(DATASET_ID), "--cases", "16", "--size", "48"], env=env,
                       check=True)
    if not os.path.isfile(f"{workdir}/preprocessed/Dataset{DATASET_ID}_SynthBraTS/nnUNetPlansCPU.json"):
        subprocess.run([f"{bindir}/nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres",
                        "-np", "1", "-npfp", "1"], env=env, check=True, capture_output=True)
        subprocess.run([f"{bindir}/mstkd_apply_plans", "-d", str(DATASET_ID)], env=env, check=True)


def measure(trainer_name: str, iterations: int, warmup: int, device: str) -> dict:
    """In this process: time ``iterations`` train steps of ``trainer_name`` after ``warmup`` steps."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, trainer_name, "nnUNetPlansCPU",
                                    device=torch.device(device))
    trainer.on_train_start()
    trainer.on_train_epoch_start()
    times, cpu_times = [], []
    for i in range(warmup + iterations):
        batch = next(trainer.dataloader_train)
        if device == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train_step(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if trainer_name == "nnUNetTrainerMSTKDTeacher":
        # The student of this benchmark distils from this (barely trained) teacher.
        trainer.save_checkpoint(os.path.join(trainer.output_folder, "checkpoint_final.pth"))
    times.sort()
    result = {"trainer": trainer_name, "median_s": times[len(times) // 2], "mean_s": sum(times) / len(times),
              "cpu_median_s": statistics.median(cpu_times),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    trainer.on_train_end()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/mstkd_cost")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="turns each trainer takes (default 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    if args.one:
        os.environ.update(_env(workdir), nnUNet_n_proc_DA="0")
        print("RESULT " + json.dumps(measure(args.one, args.iterations, args.warmup, args.device)))
        return
    prepare(workdir)
    runs: dict[str, list[dict]] = {name: [] for name in TRAINERS}
    for round_index in range(args.rounds):
        for name in TRAINERS:
            print(f"round {round_index + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--workdir", workdir, "--iterations",
                                  str(args.iterations), "--warmup", str(args.warmup), "--device", args.device,
                                  "--one", name], capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                sys.exit(f"{name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(line[0][7:]))
    teacher_runs = runs["nnUNetTrainerMSTKDTeacher"]
    rows = []
    for name in TRAINERS:
        rows.append({"trainer": name,
                     "median_s": statistics.median(r["median_s"] for r in runs[name]),
                     "mean_s": statistics.mean(r["mean_s"] for r in runs[name]),
                     "ratio": statistics.median(r["median_s"] / t["median_s"]
                                                for r, t in zip(runs[name], teacher_runs)),
                     "per_round": [r["median_s"] for r in runs[name]],
                     "cpu_s": statistics.median(r["cpu_median_s"] for r in runs[name]),
                     "cpu_ratio": statistics.median(r["cpu_median_s"] / t["cpu_median_s"]
                                                    for r, t in zip(runs[name], teacher_runs)),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[name]),
                     "peak_cuda_mb": max(r.get("peak_cuda_mb", 0) for r in runs[name]) or None})
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Command: python scripts/bench_train_cost.py --iterations {args.iterations} --warmup {args.warmup} "
          f"--rounds {args.rounds} --device {args.device}")
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}; plans "
          f"nnUNetPlansCPU 3d_fullres (patch 32³, batch 2, features 16-32-64), synthetic 48³ cases\n")
    mem_col = "peak CUDA MB" if args.device == "cuda" else "peak RSS MB"
    print(f"| trainer | median s/iteration | mean s/iteration | × teacher | median s/iteration per round | "
          f"CPU s/iteration | × teacher (CPU) | {mem_col} |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = r["peak_cuda_mb"] or r["peak_rss_mb"]
        rounds = ", ".join(f"{x:.3f}" for x in r["per_round"])
        print(f"| {r['trainer']} | {r['median_s']:.3f} | {r['mean_s']:.3f} | {r['ratio']:.2f} | {rounds} | "
              f"{r['cpu_s']:.3f} | {r['cpu_ratio']:.2f} | {mem:.0f} |")


if __name__ == "__main__":
    main()
