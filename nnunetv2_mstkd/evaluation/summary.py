"""The benchmark's rows and their summary: per-case CSV, summary JSON (the tables and plots re-exported here).

A *row* is one case, one model, one modality subset and one region::

    {"case": "BraTS_001", "model": "nnUNetTrainerMSTKD", "subset": "FL+T1Gd", "region": "WT",
     "Dice": 0.91, "HD95": 3.2}

``subset`` is a label from :func:`nnunetv2_mstkd.modalities.subset_label`; Dice is a
fraction (tables print it in %), HD95 is in mm. :func:`summarize` turns rows into a
*summary*::

    {"models": [...], "subsets": [...], "regions": [...], "metrics": ["Dice", "HD95"],
     "n_cases": {model: int},   # (fold, case) evaluations when rows carry a "fold"
     "results": {model: {subset or "Avg": {region: {metric: {"mean", "std", "n"}}}}}}

which :func:`markdown_table` and :func:`~nnunetv2_mstkd.evaluation.heatmap.plot_dice_heatmap`
render. The paper's own numbers (``docs/paper_tables.csv``) load into the same shape
with :func:`~nnunetv2_mstkd.evaluation.tables.paper_summary`, so both tables share one layout.

The Markdown tables, the heatmap and the Wilcoxon tests live in their own modules
and are re-exported here, so the benchmark imports everything from one place.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import save_json

from nnunetv2_mstkd.evaluation.heatmap import plot_dice_heatmap
from nnunetv2_mstkd.evaluation.metrics import CORE_METRICS as METRICS
from nnunetv2_mstkd.evaluation.metrics import HIGHER_IS_BETTER, metrics_of
from nnunetv2_mstkd.evaluation.stats import default_reference_model, wilcoxon_markdown, wilcoxon_tests
from nnunetv2_mstkd.evaluation.tables import (
    PAPER_TABLES_CSV,
    markdown_table,
    paper_markdown_table,
    paper_reference_rows,
    paper_summary,
)

__all__ = [
    "COLUMNS", "METRICS", "PAPER_TABLES_CSV", "write_per_case_csv", "read_per_case_csv", "summarize",
    "write_summary_json", "markdown_table", "paper_reference_rows", "paper_summary", "paper_markdown_table",
    "plot_dice_heatmap", "wilcoxon_tests", "wilcoxon_markdown", "default_reference_model",
]

#: Columns every per-case row carries, in the order they are written.
COLUMNS: tuple[str, ...] = ("case", "model", "subset", "region", "Dice", "HD95")


def write_per_case_csv(rows: Iterable[dict], path: str | Path) -> None:
    """Write rows to ``path``: the :data:`COLUMNS` first, then any extra keys in first-seen order."""
    rows = list(rows)
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in COLUMNS))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS) + extra, restval="")
        writer.writeheader()
        writer.writerows(rows)


def read_per_case_csv(path: str | Path) -> list[dict]:
    """Read rows written by :func:`write_per_case_csv`; Dice and HD95 become floats, extras stay strings.

    Raises:
        ValueError: If a required column is missing or a metric is not a number (names file and line).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; a per-case CSV needs {list(COLUMNS)}.")
        rows = []
        for line, row in enumerate(reader, start=2):
            for m in [m for m in HIGHER_IS_BETTER if m in METRICS or row.get(m, "") not in ("", None)]:
                try:
                    row[m] = float(row[m])
                except ValueError:
                    raise ValueError(f"{path}, line {line}: {m}={row[m]!r} is not a number.") from None
            rows.append(row)
    return rows


def _stats(values: Sequence[float]) -> dict:
    # Sample standard deviation (ddof=1): the spread of the cases, undefined for a single case.
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()) if v.size else math.nan,
            "std": float(v.std(ddof=1)) if v.size > 1 else math.nan, "n": int(v.size)}


def summarize(rows: Iterable[dict], subset_order: Sequence[str]) -> dict:
    """Mean, standard deviation and count per model, subset, region and metric, plus "Avg".

    "Avg" is the paper's average: the mean of the per-subset means over ``subset_order``
    (NaN when a model lacks any of those subsets). Its ``std`` is the spread over cases of
    each case's own subset average, and ``n`` counts the cases that have every subset.

    Args:
        rows: Per-case rows (see the module docstring).
        subset_order: The subset labels to summarise, in table order.

    Returns:
        The summary dict described in the module docstring.

    Raises:
        ValueError: For an empty ``subset_order``, a subset not in it, a row lacking a column,
            a duplicated row or a non-finite metric.
    """
    order = list(subset_order)
    if not order:
        raise ValueError("subset_order is empty; pass the subset labels to tabulate, e.g. "
                         "[subset_label(s, names) for s in paper_subsets(names)].")
    rows = list(rows)
    metrics = metrics_of(rows)
    # grouped[model][region][subset][case] = {metric: value}
    grouped: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]] = {}
    regions: dict[str, None] = {}
    for r in rows:
        missing = [c for c in COLUMNS if c not in r]
        if missing:
            raise ValueError(f"Row {r} lacks {missing}; rows need {list(COLUMNS)}.")
        key = (r["case"], r["model"], r["subset"], r["region"]) + ((f"fold {r['fold']}",) if "fold" in r else ())
        if r["subset"] not in order:
            raise ValueError(f"Row {key}: subset {r['subset']!r} is not in subset_order {order}; "
                             f"use the labels of nnunetv2_mstkd.modalities.subset_label.")
        for m in metrics:
            if not math.isfinite(float(r[m])):
                raise ValueError(f"Row {key}: {m}={r[m]} is not finite; the metrics define every empty-mask case.")
        cases = grouped.setdefault(r["model"], {}).setdefault(r["region"], {}).setdefault(r["subset"], {})
        # the same case scored by several folds' models (a shared test set) counts once per fold
        unit = r["case"] if str(r.get("fold", "")) == "" else (str(r["fold"]), r["case"])
        if unit in cases:
            raise ValueError(f"Row {key} appears twice; each case, model, subset and region needs one row.")
        cases[unit] = {m: float(r[m]) for m in metrics}
        regions.setdefault(r["region"], None)
    results: dict = {}
    for model, by_region in grouped.items():
        results[model] = {s: {} for s in order}
        for region, by_subset in by_region.items():
            for s, cases in by_subset.items():
                results[model][s][region] = {m: _stats([v[m] for v in cases.values()]) for m in metrics}
            results[model]["Avg"] = results[model].get("Avg", {})
            results[model]["Avg"][region] = {m: _average(by_subset, m, order) for m in metrics}
        results[model] = {s: cells for s, cells in results[model].items() if cells}
    n_cases = {model: len({c for by_subset in by_region.values() for cases in by_subset.values() for c in cases})
               for model, by_region in grouped.items()}
    return {"models": list(grouped), "subsets": order, "regions": list(regions), "metrics": metrics,
            "n_cases": n_cases, "results": results}


def _average(by_subset: dict[str, dict[str, dict[str, float]]], metric: str, order: list[str]) -> dict:
    if any(s not in by_subset for s in order):
        return {"mean": math.nan, "std": math.nan, "n": 0}
    complete = set.intersection(*(set(by_subset[s]) for s in order))
    stats = _stats([np.mean([by_subset[s][c][metric] for s in order]) for c in sorted(complete)])
    stats["mean"] = float(np.mean([np.mean([v[metric] for v in by_subset[s].values()]) for s in order]))
    return stats


def write_summary_json(summary: dict, path: str | Path) -> None:
    """Write a summary as JSON; NaN (undefined mean or std) becomes ``null``."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return None if isinstance(x, float) and not math.isfinite(x) else x
    save_json(clean(summary), str(path), sort_keys=False)
