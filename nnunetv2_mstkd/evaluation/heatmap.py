"""Dice heatmap: models x modality subsets, one panel per region (and per Dice kind), values in each cell."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from nnunetv2_mstkd.evaluation.tables import select_models_and_regions
from nnunetv2_mstkd.regions import DISPLAY_SCALE


def plot_dice_heatmap(summary: dict, subset_order: Sequence[str], models: Sequence[str] | None, path: str | Path,
                      regions: Sequence[str] | None = None) -> Path:
    """Save a PNG of mean Dice (%) per model and subset (then "Avg"), one panel per region.

    A summary with BraTS's lesion-wise Dice (``--brats-metrics``) gets a second panel per region for it.

    Cells without a value are grey and unlabelled. All panels share one colour scale
    (0-100 %) and one colour bar, so colours compare across regions. The figure is drawn
    with matplotlib's object API and rendered by Agg, without touching pyplot's global
    backend, so it works without a display and leaves an interactive session alone.

    Args:
        summary: Output of :func:`~nnunetv2_mstkd.evaluation.summary.summarize` (also after JSON).
        subset_order: Subset labels in column order.
        models: Rows in this order; None for the summary's models.
        path: Where to write the PNG.
        regions: Panels in this order; defaults to the summary's regions.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a requested model is not in the summary, or there is nothing to plot.
    """
    models, regions = select_models_and_regions(summary, models, regions)
    columns = list(subset_order) + ["Avg"]
    if not models or not regions:
        raise ValueError(f"Nothing to plot: models={models}, regions={regions}.")

    fig_w = 2.5 + 0.62 * len(columns)
    panels = [(metric, region) for metric in ("Dice", "LesionDice") if metric in summary.get("metrics", ["Dice"])
              for region in regions]
    fig_h = 1.2 + len(panels) * (0.8 + 0.38 * len(models))
    fig = Figure(figsize=(fig_w, fig_h), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    image = None
    for ax, (metric, region) in zip(axes[:, 0], panels):
        grid = np.full((len(models), len(columns)), np.nan)
        for i, m in enumerate(models):
            for j, c in enumerate(columns):
                mean = summary["results"][m].get(c, {}).get(region, {}).get(metric, {}).get("mean")
                if mean is not None and math.isfinite(mean):
                    grid[i, j] = DISPLAY_SCALE[metric] * mean
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if math.isfinite(v):
                # Dark text on the bright end of viridis, white elsewhere.
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="black" if v > 60 else "white")
        ax.set_title(f"{'Dice' if metric == 'Dice' else 'Lesion-wise Dice'} {region} (%)", fontsize=10)
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.axvline(len(columns) - 1.5, color="white", linewidth=2)  # sets "Avg" apart from the subsets
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="Dice (%)", shrink=0.8)
    path = Path(path)
    fig.savefig(path, dpi=150)
    return path
