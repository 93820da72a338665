"""Training cost of each row of the one-against-fifteen comparison, from nnU-Net's own training logs.

A training's cost is its median epoch time (nnU-Net's "Epoch time" lines) times its number of epochs:
the median is robust to an epoch that was paused while other work used the 2 cores. The final
validation is not counted (it is the same for every model).

    python docs/results/dedicated/training_cost.py RESULTS_DIR > docs/results/dedicated/training_cost.md
"""
from __future__ import annotations

import glob
import os
import re
import statistics
import sys

S = "_10ep25it__nnUNetPlansCPU__3d_fullres"
SUBSETS = ["T1", "T1ce", "T2", "FLAIR", "T1_T1ce", "T1_T2", "T1_FLAIR", "T1ce_T2", "T1ce_FLAIR", "T2_FLAIR",
           "T1_T1ce_T2", "T1_T1ce_FLAIR", "T1_T2_FLAIR", "T1ce_T2_FLAIR", "T1_T1ce_T2_FLAIR"]
ROWS = {
    "modality dropout": ["nnUNetTrainerModalityDropout"],
    "MST-KD (`_noKD` teacher + student)": ["nnUNetTrainerMSTKD_noKD", "nnUNetTrainerMSTKD_mdTeacher"],
    "dedicated per subset (15 models)": [f"nnUNetTrainerDedicated_{s}" for s in SUBSETS],
}


def training_seconds(fold_dir: str) -> float:
    times = [float(m) for path in sorted(glob.glob(os.path.join(fold_dir, "training_log_*.txt")))
             for m in re.findall(r"Epoch time: ([0-9.]+) s", open(path).read())]
    if not times:
        raise FileNotFoundError(f"no epoch times in {fold_dir}")
    return statistics.median(times) * len(times)


def main(results: str) -> None:
    dataset = os.path.join(results, "Dataset993_SynthBraTS")
    print("| row | trainings | CPU minutes, fold 0 / 1 / 2 | mean | relative to MST-KD |")
    print("|---|---:|---|---:|---:|")
    means = {}
    lines = []
    for row, trainers in ROWS.items():
        per_fold = [sum(training_seconds(os.path.join(dataset, t + S, f"fold_{f}")) for t in trainers) / 60
                    for f in range(3)]
        means[row] = sum(per_fold) / 3
        lines.append((row, len(trainers), per_fold))
    ref = means["MST-KD (`_noKD` teacher + student)"]
    for row, n, per_fold in lines:
        print(f"| {row} | {n} | {' / '.join(f'{m:.1f}' for m in per_fold)} | {means[row]:.1f} | "
              f"{means[row] / ref:.2f}× |")


if __name__ == "__main__":
    main(sys.argv[1])
