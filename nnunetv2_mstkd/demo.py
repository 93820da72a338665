"""The end-to-end demo: synthetic data → nnU-Net planning → four trainers → the 15-subset benchmark.

Every step is a real command (``mstkd_synth``, ``nnUNetv2_plan_and_preprocess``,
``mstkd_apply_plans``, ``nnUNetv2_train``, ``mstkd_benchmark``), run in a work
folder that holds ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results``.
Finished steps are skipped when the demo is run again (nnU-Net's own ``--c``
continues an interrupted training). Full logs go to ``WORKDIR/logs``.

    python -m nnunetv2_mstkd.demo --workdir demo_workdir
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

from nnunetv2_mstkd.env import with_trainers_dir

#: Lines of nnU-Net's output worth showing on the console while a step runs.
SHOW = re.compile(r"Epoch \d+\s*$|train_loss|Pseudo dice|loss terms|Epoch time|Mean Validation Dice|predicting|"
                  r"Preprocessing|error|Error|Traceback|Wrote|saved|%\|")
#: Trained in this order: nnUNetTrainerMSTKD distils from nnUNetTrainerMSTKD_noKD (its teacher and starting point).
TRAINERS = ("nnUNetTrainer", "nnUNetTrainerModalityDropout", "nnUNetTrainerMSTKD_noKD", "nnUNetTrainerMSTKD")


def _env(workdir: str) -> dict:
    env = dict(os.environ)
    env.update(nnUNet_raw=os.path.join(workdir, "nnUNet_raw"),
               nnUNet_preprocessed=os.path.join(workdir, "nnUNet_preprocessed"),
               nnUNet_results=os.path.join(workdir, "nnUNet_results"), PYTHONUNBUFFERED="1")
    env.setdefault("nnUNet_def_n_proc", "2")
    env["nnUNet_extTrainer"] = with_trainers_dir(env.get("nnUNet_extTrainer"))
    env.pop("nnUNet_n_proc_DA", None)
    return env


def _step(title: str, cmd: list[str], env: dict, log_path: str) -> None:
    """Run one command, echoing its progress lines and keeping the full output in ``log_path``."""
    print(f"\n==> {title}\n    $ {' '.join(cmd)}\n    (full log: {log_path})", flush=True)
    start = time.time()
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            for part in line.rstrip("\n").split("\r"):
                if part.strip() and SHOW.search(part):
                    print("    " + part.strip()[-150:], flush=True)
        code = proc.wait()
    if code != 0:
        sys.exit(f"Step '{title}' failed with exit code {code}; see {log_path}")
    print(f"    done in {time.time() - start:.0f} s", flush=True)


def run_demo(workdir: str, dataset_id: int = 990, cases: int = 16, size: int = 48, schedule: str = "10ep25it",
             device: str = "cpu") -> str:
    """Run the whole demo; returns the benchmark's output folder."""
    workdir = os.path.abspath(workdir)
    env = _env(workdir)
    logs = os.path.join(workdir, "logs")
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.makedirs(env[key], exist_ok=True)
    os.makedirs(logs, exist_ok=True)
    bindir = os.path.dirname(sys.executable)

    def exe(name):
        return shutil.which(name, path=bindir) or name

    name = f"Dataset{dataset_id:03d}_SynthBraTS"
    t0 = time.time()
    if not os.path.isfile(os.path.join(env["nnUNet_raw"], name, "dataset.json")):
        _step("1/6 synthesise a BraTS-like dataset",
              [exe("mstkd_synth"), "-d", str(dataset_id), "--cases", str(cases), "--size", str(size)], env,
              os.path.join(logs, "synth.log"))
    pre = os.path.join(env["nnUNet_preprocessed"], name)
    if not os.path.isfile(os.path.join(pre, "nnUNetPlans.json")):
        plan_env = dict(env)
        _step("2/6 nnU-Net fingerprint, plans and preprocessing",
              [exe("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", "3d_fullres", "-np", "1", "-npfp",
               "1", "--verify_dataset_integrity"], plan_env, os.path.join(logs, "plan.log"))
    if not os.path.isfile(os.path.join(pre, "nnUNetPlansCPU.json")):
        _step("3/6 CPU plans (nnUNetPlannerCPU)", [exe("mstkd_apply_plans"), "-d", str(dataset_id)], env,
              os.path.join(logs, "cpu_plans.log"))
    train_env = dict(env, nnUNet_n_proc_DA="0")
    trainers = [f"{t}_{schedule}" for t in TRAINERS]
    for i, trainer in enumerate(trainers, 1):
        fold = os.path.join(env["nnUNet_results"], name, f"{trainer}__nnUNetPlansCPU__3d_fullres", "fold_0")
        if os.path.isfile(os.path.join(fold, "checkpoint_final.pth")):
            print(f"\n==> 4/6 train {trainer}: already trained ({fold})")
            continue
        resume = ["--c"] if os.path.isfile(os.path.join(fold, "checkpoint_latest.pth")) else []
        _step(f"4/6 train {trainer} ({i}/{len(trainers)})",
              [exe("nnUNetv2_train"), str(dataset_id), "3d_fullres", "0", "-p", "nnUNetPlansCPU", "-tr", trainer,
               "-device", device] + resume, train_env, os.path.join(logs, f"train_{trainer}.log"))
    out = os.path.join(workdir, "benchmark")
    # The two baselines of METHOD §5, MST-KD's teacher (the same network with dropout, no distillation) and MST-KD
    compared = [f"{t}_{schedule}" for t in TRAINERS]
    _step("5/6 benchmark all 15 modality subsets on the fold-0 validation cases (baselines, _noKD and MST-KD)",
          [exe("mstkd_benchmark"), "-d", str(dataset_id), "-c", "3d_fullres", "-f", "0", "-p", "nnUNetPlansCPU",
           "-tr", *compared, "-o", out, "-device", device, "--disable_tta"], env, os.path.join(logs, "benchmark.log"))
    print("\n==> 6/6 results\n")
    with open(os.path.join(out, "results.md")) as f:
        print(f.read())
    print(f"Demo finished in {(time.time() - t0) / 60:.1f} min. Outputs:")
    for fname in sorted(os.listdir(out)):
        print(f"  {os.path.join(out, fname)}")
    print(f"  trained models: {os.path.join(env['nnUNet_results'], name)}\n  logs: {logs}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="End-to-end demo of nnunetv2-mstkd on synthetic data (CPU).")
    parser.add_argument("--workdir", default="demo_workdir", help="folder for data, models and results")
    parser.add_argument("-d", type=int, default=990, help="synthetic dataset ID (default 990)")
    parser.add_argument("--cases", type=int, default=16, help="synthetic training cases (default 16)")
    parser.add_argument("--size", type=int, default=48, help="synthetic image size (default 48)")
    parser.add_argument("--schedule", default="10ep25it", choices=("10ep25it", "1ep10it"),
                        help="short schedule suffix of the trainers (default 10ep25it; 1ep10it for a smoke run)")
    parser.add_argument("-device", default="cpu", help="cpu or cuda (default cpu)")
    args = parser.parse_args()
    run_demo(args.workdir, args.d, args.cases, args.size, args.schedule, args.device)


if __name__ == "__main__":
    main()
