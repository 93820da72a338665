"""Spread across folds (or seeds): each fold's 15-subset average and their mean ± SD.

One training run per model can show anything at small scale (a run may give up on a
region for every subset without T1ce), so a comparison needs several runs. When the
benchmark evaluates several folds, each fold's model on its own validation cases (the
nnU-Net way) or every fold's model on one test set, :func:`fold_summary` gives every
model, region and metric the paper's average (mean over the subsets of the per-subset
means over cases) per fold, then the mean and the sample standard deviation across
folds. That SD is the noise floor against which differences between models are read.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from nnunetv2_mstkd.evaluation.metrics import metrics_of
from nnunetv2_mstkd.regions import DISPLAY_SCALE


def fold_summary(rows: Iterable[dict], subset_order: Sequence[str]) -> dict:
    """Per model, region and metric: the average over ``subset_order`` for each fold, and mean ± SD over folds.

    Args:
        rows: Per-case rows with a ``fold`` key (rows without one count as fold ``""``).
        subset_order: The subsets averaged (all must be present for a fold to count).

    Returns:
        ``{"folds": [...], "results": {model: {region: {metric: {"per_fold": {fold: value},
        "mean": float, "sd": float (NaN for one fold), "n_folds": int}}}}}``. A fold lacking a
        subset is left out of that model's numbers.
    """
    rows = list(rows)
    metrics = metrics_of(rows)
    # cells[model][region][fold][subset] = list of values (one per case), per metric
    cells: dict = {}
    folds: dict[str, None] = {}
    for r in rows:
        fold = str(r.get("fold", ""))
        folds.setdefault(fold, None)
        by_subset = cells.setdefault(r["model"], {}).setdefault(r["region"], {}).setdefault(fold, {})
        entry = by_subset.setdefault(r["subset"], {m: [] for m in metrics})
        for m in metrics:
            entry[m].append(float(r[m]))
    results: dict = {}
    for model, by_region in cells.items():
        for region, by_fold in by_region.items():
            for m in metrics:
                per_fold = {f: float(np.mean([np.mean(by_subset[s][m]) for s in subset_order]))
                            for f, by_subset in by_fold.items() if all(s in by_subset for s in subset_order)}
                v = np.array(list(per_fold.values()), dtype=float)
                results.setdefault(model, {}).setdefault(region, {})[m] = {
                    "per_fold": per_fold, "mean": float(v.mean()) if v.size else math.nan,
                    "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan, "n_folds": int(v.size)}
    return {"folds": list(folds), "metrics": metrics, "results": results}


def _shown(value: float, metric: str) -> str:
    """A value as the tables print it: Dice in %, HD95 in mm, one decimal; "–" when undefined."""
    return "–" if not math.isfinite(value) else f"{DISPLAY_SCALE[metric] * value:.1f}"


def _cell(stats: dict, metric: str) -> str:
    if not math.isfinite(stats["mean"]):
        return "–"
    sd = f" ± {_shown(stats['sd'], metric)}" if math.isfinite(stats["sd"]) else ""
    return f"{_shown(stats['mean'], metric)}{sd}"


def fold_markdown(summary: dict, models: Sequence[str], regions: Sequence[str]) -> str:
    """Markdown table: per model, mean ± SD across folds of the subset average, per metric and region.

    Each fold's value is the paper's average for that fold's model (mean over the subsets);
    the ± is the sample SD across folds. Per-fold values follow in a second table.
    """
    metrics = summary.get("metrics", ["Dice", "HD95"])
    head = "| Model | " + " | ".join(f"{m} {r}" for m in metrics for r in regions) + " | folds |"
    lines = [head, "|---|" + "---:|" * (len(metrics) * len(regions)) + "---:|"]
    for model in models:
        res = summary["results"].get(model, {})
        cells = [_cell(res[r][m], m) if r in res else "–" for m in metrics for r in regions]
        n = max((res[r][m]["n_folds"] for m in metrics for r in regions if r in res), default=0)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {n} |")
    per_fold = ["| Model | fold | " + " | ".join(f"{m} {r}" for m in metrics for r in regions) + " |",
                "|---|---|" + "---:|" * (len(metrics) * len(regions))]
    for model in models:
        res = summary["results"].get(model, {})
        for fold in summary["folds"]:
            values = []
            for m in metrics:
                for r in regions:
                    v = res.get(r, {}).get(m, {}).get("per_fold", {}).get(fold, math.nan)
                    values.append(_shown(v, m))
            per_fold.append(f"| {model} | {fold} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n\nPer fold:\n\n" + "\n".join(per_fold) + "\n"
