"""Paper-layout Markdown tables: ours from a summary, and the paper's own numbers beside it.

The layout follows Zhu et al. (MICCAI 2025), Tables 1-2: the 15 modality subsets as
columns in the paper's order, then their mean "Avg"; one block of rows per metric and
region, one row per method, the best value of each column in bold. The input is the
summary dict of :func:`nnunetv2_mstkd.evaluation.summary.summarize`.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from nnunetv2_mstkd.evaluation.metrics import CORE_METRICS, HIGHER_IS_BETTER, METRIC_LABELS
from nnunetv2_mstkd.modalities import BRATS_CHANNELS, resolve_channels, subset_label
from nnunetv2_mstkd.regions import DISPLAY_SCALE

#: The paper's per-subset numbers (Tables 1-2), as shipped in the repository's docs/.
PAPER_TABLES_CSV = Path(__file__).resolve().parents[2] / "docs" / "paper_tables.csv"


def _cell(summary: dict, model: str, subset: str, region: str, metric: str) -> float:
    stats = summary["results"].get(model, {}).get(subset, {}).get(region, {}).get(metric, {})
    mean = stats.get("mean")  # None where the summary went through JSON with an undefined mean
    return math.nan if mean is None else float(mean)


def _fmt(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.1f}"


def select_models_and_regions(summary: dict, models=None, regions=None) -> tuple[list, list]:
    """The models and regions to show (default: all in the summary).

    Raises:
        ValueError: If a requested model is not in the summary.
    """
    models = list(summary["models"] if models is None else models)
    unknown = [m for m in models if m not in summary["results"]]
    if unknown:
        raise ValueError(f"Model(s) {unknown} are not in the summary; it has {list(summary['results'])}.")
    return models, list(summary["regions"] if regions is None else regions)


def markdown_table(summary: dict, subset_order: Sequence[str], models: Sequence[str] | None = None,
                   regions: Sequence[str] | None = None) -> str:
    """Render a summary as a GitHub Markdown table in the paper's layout.

    Columns: metric, region, method, then one per subset in ``subset_order`` and "Avg".
    One block of rows per metric and region (Dice in %, HD95 in mm, one decimal), one
    row per model. Within a block the best value of each column is bold (all ties at the
    printed precision; nothing when fewer than two models have a value). A missing value
    prints as "–".

    Args:
        summary: Output of :func:`~nnunetv2_mstkd.evaluation.summary.summarize` (or
            :func:`paper_summary`), also after a round trip through JSON.
        subset_order: Subset labels in column order, e.g.
            ``[subset_label(s, names) for s in paper_subsets(names)]``.
        models: Rows in this order; defaults to the summary's models.
        regions: Region blocks in this order; defaults to the summary's regions.

    Returns:
        The table, newline-terminated.

    Raises:
        ValueError: If a requested model is not in the summary.
    """
    models, regions = select_models_and_regions(summary, models, regions)
    columns = list(subset_order) + ["Avg"]
    lines = ["| Metric | Region | Method | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---:|" * len(columns)]
    for metric in summary.get("metrics", CORE_METRICS):
        higher_better, scale, unit = HIGHER_IS_BETTER[metric], DISPLAY_SCALE[metric], METRIC_LABELS[metric]
        for region in regions:
            text = {m: [_fmt(_cell(summary, m, c, region, metric) * scale) for c in columns] for m in models}
            for j in range(len(columns)):
                # Compare what the reader sees, so equal printed values are bolded alike.
                shown = [float(text[m][j]) for m in models if text[m][j] != "–"]
                if len(shown) < 2:
                    continue
                best = max(shown) if higher_better else min(shown)
                for m in models:
                    if text[m][j] != "–" and float(text[m][j]) == best:
                        text[m][j] = f"**{text[m][j]}**"
            for i, m in enumerate(models):
                head = f"| {unit} | {region} | " if i == 0 else "| | | "
                lines.append(head + f"{m} | " + " | ".join(text[m]) + " |")
    return "\n".join(lines) + "\n"


def paper_reference_rows(csv_path: str | Path = PAPER_TABLES_CSV, dataset: str = "BraTS2024") -> list[dict]:
    """The paper's per-subset means for one dataset, as rows in our units and labels.

    Args:
        csv_path: The paper-tables CSV (columns dataset, metric, region, method, one per
            subset, Avg_reported, Avg_recomputed_mean15); defaults to ``docs/paper_tables.csv``.
        dataset: ``"BraTS2024"`` or ``"FeTS2024"``.

    Returns:
        Rows ``{"model", "subset", "region", "metric", "value"}``: Dice as a fraction, HD95
        in mm, subsets labelled as :func:`~nnunetv2_mstkd.modalities.subset_label` does;
        subset "Avg" holds the average the paper reports.

    Raises:
        ValueError: If the CSV has no rows for ``dataset`` (the message lists those it has).
    """
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    datasets = sorted({r["dataset"] for r in table})
    if dataset not in datasets:
        raise ValueError(f"{csv_path} has no rows for dataset {dataset!r}; it has {datasets}.")
    rows = []
    for r in table:
        if r["dataset"] != dataset:
            continue
        scale = 1 / DISPLAY_SCALE[r["metric"]]
        for column, value in r.items():
            if column in ("dataset", "metric", "region", "method", "Avg_recomputed_mean15"):
                continue
            label = "Avg" if column == "Avg_reported" else _our_label(column)
            rows.append({"model": r["method"], "subset": label, "region": r["region"], "metric": r["metric"],
                         "value": float(value) * scale})
    return rows


def _our_label(paper_column: str) -> str:
    if paper_column == "All":
        return "All"
    return subset_label(resolve_channels(paper_column.split("+"), BRATS_CHANNELS), BRATS_CHANNELS)


def paper_summary(paper_rows: Iterable[dict]) -> dict:
    """Arrange :func:`paper_reference_rows` into the summary shape (means only: std NaN, n 0)."""
    results: dict = {}
    models, subsets, regions = {}, {}, {}
    for r in paper_rows:
        models.setdefault(r["model"], None)
        regions.setdefault(r["region"], None)
        if r["subset"] != "Avg":
            subsets.setdefault(r["subset"], None)
        cell = results.setdefault(r["model"], {}).setdefault(r["subset"], {}).setdefault(r["region"], {})
        cell[r["metric"]] = {"mean": r["value"], "std": math.nan, "n": 0}
    return {"models": list(models), "subsets": list(subsets), "regions": list(regions),
            "metrics": list(CORE_METRICS), "n_cases": {}, "results": results}


def paper_markdown_table(subset_order: Sequence[str], csv_path: str | Path = PAPER_TABLES_CSV,
                         dataset: str = "BraTS2024", models: Sequence[str] | None = None) -> str:
    """The paper's numbers in :func:`markdown_table`'s layout, preceded by a note on comparability.

    Args:
        subset_order: Subset labels in column order (the same as for our table).
        csv_path: The paper-tables CSV; defaults to ``docs/paper_tables.csv``.
        dataset: ``"BraTS2024"`` or ``"FeTS2024"``.
        models: Methods to show, in order; defaults to all seven in the paper.
    """
    table = markdown_table(paper_summary(paper_reference_rows(csv_path, dataset)), subset_order, models)
    note = (f"Published numbers for {dataset} (Zhu et al., MICCAI 2025). Their data split, preprocessing and "
            "training differ from ours, and their HD95 is 0 mm when either mask is empty (ours: the volume "
            "diagonal), so read them beside our table for orientation, not as a like-for-like comparison.")
    return f"{note}\n\n{table}"
