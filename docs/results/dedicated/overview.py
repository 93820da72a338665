"""The one-against-fifteen overview: each row's 15-subset means (voxel-wise and lesion-wise Dice) and the
enhancing tumour with and without T1ce, from a merged benchmark folder.

    python docs/results/dedicated/overview.py docs/results/dedicated/heldout > docs/results/dedicated/overview.md
"""
from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict

import numpy as np


def main(bench: str) -> None:
    summary = json.load(open(f"{bench}/summary.json"))
    cells: dict = defaultdict(list)
    for r in csv.DictReader(open(f"{bench}/per_case.csv", newline="")):
        for metric in ("Dice", "LesionDice"):
            cells[(r["model"], r["subset"], r["region"], metric)].append(float(r[metric]))
    subsets = summary["subsets"]
    with_t1ce = [s for s in subsets if "T1Gd" in s or s == "All"]
    without = [s for s in subsets if s not in with_t1ce]

    def mean(model, region, metric, among):
        return 100 * float(np.mean([np.mean(cells[(model, s, region, metric)]) for s in among]))

    print(f"Benchmark: `{bench}` ({summary['benchmark']['n_cases']} cases). Mean over the subsets of the mean "
          f"over cases, in %.\n")
    print("| row | Dice WT / TC / ET, 15 subsets | lesion-wise Dice WT / TC / ET | ET with T1ce (8) / without (7) "
          "| lesion-wise ET with / without |")
    print("|---|---|---|---|---|")
    for m in summary["models"]:
        dice = " / ".join(f"{mean(m, r, 'Dice', subsets):.1f}" for r in ("WT", "TC", "ET"))
        lesion = " / ".join(f"{mean(m, r, 'LesionDice', subsets):.1f}" for r in ("WT", "TC", "ET"))
        et = f"{mean(m, 'ET', 'Dice', with_t1ce):.1f} / {mean(m, 'ET', 'Dice', without):.1f}"
        et_l = f"{mean(m, 'ET', 'LesionDice', with_t1ce):.1f} / {mean(m, 'ET', 'LesionDice', without):.1f}"
        print(f"| {m} | {dice} | {lesion} | {et} | {et_l} |")


if __name__ == "__main__":
    main(sys.argv[1])
