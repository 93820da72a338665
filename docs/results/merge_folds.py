"""Merge per-fold ``mstkd_benchmark`` folders into one multi-fold result, as ``-f 0 1 2`` would write it.

The held-out benchmark ran one fold at a time (so that each fold's numbers existed as soon as its models
were trained); this rebuilds the pooled tables, the across-fold spread and the case-level tests from their
``per_case.csv`` and ``timing.csv`` with the package's own functions.

    python docs/results/merge_folds.py OUT BENCH_F0 BENCH_F1 BENCH_F2

A fold may be several benchmark folders of the same cases joined by commas (``A_F0,B_F0``): their
models become rows of one table (e.g. a dedicated zoo benchmarked after the unified models).
"""
from __future__ import annotations

import csv
import json
import os
import sys

from nnunetv2_mstkd.evaluation.benchmark import OUTPUT_FILES
from nnunetv2_mstkd.evaluation.folds import fold_summary
from nnunetv2_mstkd.evaluation.output_folder import write_outputs
from nnunetv2_mstkd.evaluation.summary import read_per_case_csv, summarize


def main(out: str, folders: list[str]) -> None:
    rows, timing, metas, commands = [], [], [], []
    for group in folders:
        group_metas = [json.load(open(os.path.join(folder, "summary.json")))["benchmark"]
                       for folder in group.split(",")]
        for folder, meta in zip(group.split(","), group_metas):
            if meta["fold"] != group_metas[0]["fold"] or meta["cases"] != group_metas[0]["cases"]:
                raise ValueError(f"{folder}: not the fold and cases of {group.split(',')[0]}; only benchmarks of "
                                 f"the same fold and cases are joined with a comma.")
            commands.append(meta["command"])
            rows += [{**r, "fold": meta["fold"]} for r in read_per_case_csv(os.path.join(folder, "per_case.csv"))]
            with open(os.path.join(folder, "timing.csv"), newline="") as f:
                for r in csv.DictReader(f):
                    for key in ("inference_mean_s", "inference_total_s"):
                        r[key] = float(r[key])
                    timing.append({**r, "fold": meta["fold"]})
        metas.append(group_metas[0])
    subsets = json.load(open(os.path.join(folders[0].split(",")[0], "summary.json")))["subsets"]
    summary = summarize(rows, subsets)
    summary["across_folds"] = fold_summary(rows, subsets)
    models = summary["models"]
    folds = ", ".join(str(m["fold"]) for m in metas)
    meta = {**metas[0], "fold": folds, "n_cases": sum(m["n_cases"] for m in metas),
            "cases": [c for m in metas for c in m["cases"]],
            "cases_source": f"validation cases of folds {folds} from splits_final.json, each fold's model on its own",
            "command": " ; ".join(commands) + f" ; python docs/results/merge_folds.py {out} "
                       + " ".join(folders)}
    os.makedirs(out, exist_ok=True)
    paths = {key: os.path.join(out, name) for key, name in OUTPUT_FILES.items()}
    write_outputs(paths, rows, timing, summary, models, None, meta)
    print(paths["results_md"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
