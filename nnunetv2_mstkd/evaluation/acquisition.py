"""Which sequence to acquire: the expected Dice gain of adding each absent sequence to every subset.

From a benchmark summary, for every model, every subset that lacks something and every
sequence it lacks: the Dice of the subset, of the subset plus that sequence, and the
difference, per region (:func:`~nnunetv2_mstkd.inference.expected_accuracy.gain_rows`).
Written by ``mstkd_benchmark`` as ``acquisition_gain.csv``, a Markdown table of the mean
gain over regions (rows: subsets; columns: the sequence added) and a heatmap of it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from nnunetv2_mstkd.inference.expected_accuracy import Expectation, gain_rows

#: Columns of ``acquisition_gain.csv``.
ACQUISITION_COLUMNS = ("model", "subset", "added", "region", "dice_before", "dice_after", "gain")


def acquisition_rows(summary: dict, channel_names: Sequence[str], models: Sequence[str]) -> list[dict]:
    """Every model's gain rows (see the module docstring), with a ``model`` column."""
    rows = []
    for model in models:
        expectation = Expectation(model, list(channel_names), summary["results"][model], {"model": model})
        rows += [{"model": model, **row} for row in gain_rows(expectation)]
    return rows


def mean_gain_matrix(rows: Sequence[dict], model: str, channel_names: Sequence[str]
                     ) -> tuple[list[str], np.ndarray]:
    """``(subsets, matrix)``: the mean over regions of the gain of adding each channel (NaN where present)."""
    subsets = list(dict.fromkeys(r["subset"] for r in rows if r["model"] == model))
    matrix = np.full((len(subsets), len(channel_names)), np.nan)
    for i, subset in enumerate(subsets):
        for j, name in enumerate(channel_names):
            gains = [r["gain"] for r in rows if r["model"] == model and r["subset"] == subset and r["added"] == name]
            if gains:
                matrix[i, j] = float(np.mean(gains))
    return subsets, matrix


def acquisition_markdown(rows: Sequence[dict], models: Sequence[str], channel_names: Sequence[str]) -> str:
    """Per model, a table of the mean Dice gain (points, over regions) of adding each sequence to each subset."""
    out = ["# Which sequence to acquire", "",
           "Expected gain in mean Dice (points, averaged over the regions) of adding the column's sequence to "
           "the row's subset, from this benchmark's 15-subset results. Per-region gains: `acquisition_gain.csv`.",
           ""]
    for model in models:
        subsets, matrix = mean_gain_matrix(rows, model, channel_names)
        out += [f"## {model}", "", "| subset | " + " | ".join(f"+{n}" for n in channel_names) + " | best |",
                "|---|" + "---:|" * len(channel_names) + "---|"]
        for subset, values in zip(subsets, matrix):
            cells = ["–" if np.isnan(v) else f"{v:+.1f}" for v in values]
            best = channel_names[int(np.nanargmax(values))]
            out.append(f"| {subset} | " + " | ".join(cells) + f" | {best} |")
        out.append("")
    return "\n".join(out)


def plot_acquisition(rows: Sequence[dict], models: Sequence[str], channel_names: Sequence[str], path: str) -> None:
    """One heatmap per model of :func:`mean_gain_matrix`, the value written in each cell."""
    fig = Figure(figsize=(2.2 + 1.1 * len(channel_names) * len(models), 6.5), dpi=100)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        subsets, matrix = mean_gain_matrix(rows, model, channel_names)
        limit = max(1.0, float(np.nanmax(np.abs(matrix))))
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), v in np.ndenumerate(matrix):
            if not np.isnan(v):
                ax.text(j, i, f"{v:+.0f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(channel_names)), [f"+{n}" for n in channel_names])
        ax.set_yticks(range(len(subsets)), subsets)
        ax.set_title(model, fontsize=9)
        fig.colorbar(image, ax=ax, label="mean Dice gain (points)")
    fig.tight_layout()
    fig.savefig(path)
