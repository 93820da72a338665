"""Time ``mstkd_predict`` with one channel missing against ``nnUNetv2_predict``: same cases, model and flags.

Both commands run as CLIs (start-up included), interleaved, ``--repeats`` times;
the table gives the median wall time. A second table times single cases in
this process (no start-up): nnU-Net's preprocessing, sliding window and
segmentation through ``nnUNetPredictor`` against the same through
``MissingModalityPredictor`` with the channel absent. Prints Markdown (and writes it to
``--out``). Run it on an otherwise idle machine.

Without ``-m``/``-i`` it prepares, in ``--root``, a short CPU model on the
synthetic BraTS-like data (generate, plan, CPU plans, ``nnUNetTrainer_1ep10it``)
and ``--cases`` synthetic test cases of ``--size`` voxels per edge::

    python scripts/bench_predict.py --root /tmp/mstkd_bench --out docs/benchmarks/predict_speed.md
    python scripts/bench_predict.py -m RESULTS/Dataset501_X/Trainer__Plans__3d_fullres -i imagesTs -f 0
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import version

import torch

BIN = os.path.dirname(sys.executable)
TRAINER, PLANS, CONFIGURATION = "nnUNetTrainer_1ep10it", "nnUNetPlansCPU", "3d_fullres"


def _run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def prepare_synthetic(root: str, cases: int, size: int) -> tuple[str, str, dict]:
    """A short CPU model and ``cases`` test cases in ``root`` (reused when present)."""
    from nnunetv2_mstkd.data.synthetic import generate_dataset
    env = dict(os.environ, nnUNet_raw=f"{root}/raw", nnUNet_preprocessed=f"{root}/preprocessed",
               nnUNet_results=f"{root}/results")
    model = f"{root}/results/Dataset987_SynthBraTS/{TRAINER}__{PLANS}__{CONFIGURATION}"
    if not os.path.isfile(f"{model}/fold_0/checkpoint_final.pth"):
        if not os.path.isdir(f"{root}/raw/Dataset987_SynthBraTS"):
            generate_dataset(987, 8, size=40, seed=3, raw_dir=env["nnUNet_raw"])
        _run([f"{BIN}/nnUNetv2_plan_and_preprocess", "-d", "987", "-c", CONFIGURATION, "-np", "1", "-npfp", "1"], env)
        _run([f"{BIN}/mstkd_apply_plans", "-d", "987"], env)
        _run([f"{BIN}/nnUNetv2_train", "987", CONFIGURATION, "0", "-p", PLANS, "-tr", TRAINER, "-device", "cpu"],
             dict(env, nnUNet_n_proc_DA="0"))
    raw = f"{root}/bench_raw_{cases}x{size}"
    images = f"{raw}/Dataset988_SynthBraTS/imagesTs"
    if not os.path.isdir(images):
        generate_dataset(988, 1, num_test_cases=cases, size=size, seed=7, raw_dir=raw)
    return model, images, env


def in_process(model: str, images: str, folds, missing: str, disable_tta: bool, repeats: int) -> tuple[dict, int]:
    """Median seconds per case (preprocessing; preprocessing + network + segmentation), stock vs masked."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_mstkd.inference.case_files import find_cases
    from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
    from nnunetv2_mstkd.modalities import resolve_channels

    device = torch.device("cpu")
    stock = nnUNetPredictor(use_mirroring=not disable_tta, device=device, allow_tqdm=False)
    stock.initialize_from_trained_model_folder(model, folds)
    masked = MissingModalityPredictor.from_model_folder(model, folds, device=device, use_mirroring=not disable_tta,
                                                        allow_tqdm=False)
    ending = stock.dataset_json["file_ending"]
    complete = find_cases(images, masked.channel_names, ending)
    cut = find_cases(images, masked.channel_names, ending, resolve_channels([missing], masked.channel_names))
    times = {k: [] for k in ("stock_pre", "stock_all", "masked_pre", "masked_all")}
    preprocessor = stock.configuration_manager.preprocessor_class(verbose=False)
    for _ in range(repeats):
        for full, part in zip(complete, cut):
            t0 = time.perf_counter()
            data, _, props = preprocessor.run_case(full.files, None, stock.plans_manager, stock.configuration_manager,
                                                   stock.dataset_json)
            t1 = time.perf_counter()
            logits = stock.predict_logits_from_preprocessed_data(torch.from_numpy(data))
            convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, stock.plans_manager, stock.configuration_manager, stock.label_manager, props)
            t2 = time.perf_counter()
            case = masked.preprocess(part.files, part.case_id)
            t3 = time.perf_counter()
            masked.segmentation(case, masked.predict_logits(case))
            t4 = time.perf_counter()
            for k, v in zip(times, (t1 - t0, t2 - t0, t3 - t2, t4 - t2)):
                times[k].append(v)
    return {k: statistics.median(v) for k, v in times.items()}, len(complete)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    if os.path.isfile("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} logical cores; torch {torch.__version__}, nnunetv2 {version('nnunetv2')}, "
            f"Python {platform.python_version()}; load average at the start {load} (1, 5, 15 min)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/tmp/mstkd_bench", help="work folder for the synthetic model and cases")
    p.add_argument("-m", help="model folder (DatasetXXX/Trainer__Plans__configuration); with -i")
    p.add_argument("-i", help="input folder of complete cases; with -m")
    p.add_argument("-f", nargs="+", default=["0"], help="folds. Default: 0")
    p.add_argument("--missing", default="T1ce", help="the channel mstkd_predict is told is missing. Default: T1ce")
    p.add_argument("--flags", default="--disable_tta -device cpu -npp 1 -nps 1",
                   help="flags given to both commands. Default: %(default)s")
    p.add_argument("--repeats", type=int, default=5, help="runs per command. Default: 5")
    p.add_argument("--cases", type=int, default=2, help="synthetic cases. Default: 2")
    p.add_argument("--size", type=int, default=48, help="synthetic case edge in voxels. Default: 48")
    p.add_argument("--out", help="also write the Markdown here")
    args = p.parse_args()
    from nnunetv2.utilities.file_path_utilities import parse_dataset_trainer_plans_configuration_from_path

    from nnunetv2_mstkd.env import ensure_ext_trainer

    ensure_ext_trainer()  # nnUNetv2_predict and nnUNetPredictor must find the project's trainers too
    header = machine()
    if args.m and args.i:
        model, images = os.path.abspath(args.m), args.i
        env = dict(os.environ, nnUNet_results=os.path.dirname(os.path.dirname(model)))
    else:
        model, images, env = prepare_synthetic(os.path.abspath(args.root), args.cases, args.size)
    dataset, trainer, plans, configuration = parse_dataset_trainer_plans_configuration_from_path(model)
    common = ["-i", images, "-d", dataset, "-p", plans, "-tr", trainer, "-c", configuration, "-f", *args.f,
              *shlex.split(args.flags)]
    out = os.path.join(os.path.abspath(args.root), "bench_out")
    commands = {"nnUNetv2_predict": [f"{BIN}/nnUNetv2_predict", *common],
                "mstkd_predict": [f"{BIN}/mstkd_predict", *common],
                f"mstkd_predict --missing {args.missing}": [f"{BIN}/mstkd_predict", *common, "--missing", args.missing]}
    walls = {k: [] for k in commands}
    names = list(commands)
    for r in range(args.repeats):
        # interleaved, in a rotating order, so a drifting machine load hits every command alike
        for name in names[r % len(names):] + names[:r % len(names)]:
            cmd = commands[name]
            shutil.rmtree(out, ignore_errors=True)
            walls[name].append(_run([*cmd, "-o", out], env))
            print(f"{name}: {walls[name][-1]:.2f} s", file=sys.stderr)
    torch.set_num_threads(os.cpu_count())  # as both commands do for -device cpu
    folds = [f if f == "all" else int(f) for f in args.f]
    per_case, n_cases = in_process(model, images, folds, args.missing, "--disable_tta" in args.flags, args.repeats)
    base = statistics.median(walls["nnUNetv2_predict"])
    lines = ["# Prediction speed: `mstkd_predict` against `nnUNetv2_predict`", "",
             f"Command: `python scripts/bench_predict.py {shlex.join(sys.argv[1:])}`", "", f"Machine: {header}.", "",
             f"Model: `{os.path.basename(model)}` (folds {' '.join(args.f)}); {n_cases} cases in `{images}`; "
             f"both commands get `-i ... -d {dataset} -p {plans} -tr {trainer} -c {configuration} -f "
             f"{' '.join(args.f)} {args.flags}`.", "",
             f"## Whole command, start-up included (median of {args.repeats} runs, interleaved in rotating order)", "",
             "| command | median s | min s | max s | ratio to nnUNetv2_predict |", "|---|---|---|---|---|"]
    for name, w in walls.items():
        lines.append(f"| `{name}` | {statistics.median(w):.2f} | {min(w):.2f} | {max(w):.2f} | "
                     f"{statistics.median(w) / base:.3f} |")
    lines += ["", f"## In process, per case, no start-up (median over {args.repeats} x {n_cases} cases)", "",
              f"| step | nnUNetPredictor, all channels | MissingModalityPredictor, {args.missing} absent | ratio |",
              "|---|---|---|---|",
              f"| preprocessing | {per_case['stock_pre']:.3f} s | {per_case['masked_pre']:.3f} s | "
              f"{per_case['masked_pre'] / per_case['stock_pre']:.3f} |",
              f"| preprocessing + network + segmentation | {per_case['stock_all']:.3f} s | "
              f"{per_case['masked_all']:.3f} s | {per_case['masked_all'] / per_case['stock_all']:.3f} |", ""]
    lines += [f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
