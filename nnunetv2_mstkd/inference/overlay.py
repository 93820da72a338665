"""A picture per case: every sequence through the tumour's centre, the segmentation outlined.

Rows are the model's channels (an absent one is drawn as a grey panel that says so),
columns the axial, coronal and sagittal slices through the centre of the predicted
tumour (the image centre when the prediction is empty, which the title then says).
Each region of the segmentation is outlined in its own colour; the caption carries the
expected accuracy when a benchmark was given.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

#: Outline colours of the BraTS regions; other regions take matplotlib's tab10 colours in order.
REGION_COLOURS = {"WT": "#2ca02c", "TC": "#ffd400", "ET": "#d62728"}


def tumour_centre(seg: np.ndarray) -> tuple[int, ...]:
    """Voxel index of the foreground's centre of mass (rounded), or the array's centre when it is empty."""
    foreground = np.argwhere(seg > 0)
    if len(foreground) == 0:
        return tuple(s // 2 for s in seg.shape)
    return tuple(int(np.floor(v + 0.5)) for v in foreground.mean(axis=0))  # halves round up


def _window(image: np.ndarray) -> tuple[float, float]:
    inside = image[image != 0]
    values = inside if inside.size else image.ravel()
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high if high > low else low + 1)


def plot_overlay(images: Sequence[np.ndarray | None], channel_names: Sequence[str], seg: np.ndarray,
                 regions: Mapping[str, Sequence[int]], path: str, title: str, caption: str = "",
                 spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
    """Draw and save the case picture (PNG).

    Args:
        images: One ``(z, y, x)`` array per channel (SimpleITK order), None for an absent channel.
        channel_names: Row labels.
        seg: The predicted label map, same shape as the images.
        regions: Region name -> labels forming it (outlined in :data:`REGION_COLOURS`).
        path: Where the PNG goes (the caller makes it atomic).
        title: First line of the figure.
        caption: Text under the panels (e.g. the expected Dice per region).
        spacing: ``(z, y, x)`` voxel spacing in mm, for the aspect ratio of each view.
    """
    centre = tumour_centre(seg)
    sz, sy, sx = (float(s) for s in spacing)
    views = (("axial", centre[0], lambda a: a[centre[0]], sy / sx),
             ("coronal", centre[1], lambda a: a[:, centre[1], :], sz / sx),
             ("sagittal", centre[2], lambda a: a[:, :, centre[2]], sz / sy))
    palette = matplotlib.colormaps["tab10"].colors
    colours = {name: REGION_COLOURS.get(name, palette[k % 10]) for k, name in enumerate(regions)}
    fig = Figure(figsize=(9, 2.7 * len(channel_names) + 1.2), dpi=100)
    axes = fig.subplots(len(channel_names), 3, squeeze=False)
    for row, (name, image) in enumerate(zip(channel_names, images)):
        window = _window(image) if image is not None else None
        for col, (view, index, cut, aspect) in enumerate(views):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{view} (slice {index})", fontsize=10)
            if col == 0:
                ax.set_ylabel(name, fontsize=11)
            if image is None:
                ax.set_facecolor("0.85")
                ax.text(0.5, 0.5, f"{name}\nabsent", ha="center", va="center", fontsize=11, color="0.3",
                        transform=ax.transAxes)
                continue
            ax.imshow(cut(image), cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect,
                      interpolation="nearest")
            labels = cut(seg)
            for region, members in regions.items():
                mask = np.isin(labels, list(members))
                if mask.any() and not mask.all():
                    ax.contour(mask.astype(float), levels=[0.5], colors=[colours[region]], linewidths=1.2)
    handles = [Line2D([0], [0], color=colours[r], lw=2, label=r) for r in regions]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), frameon=False, fontsize=10)
    fig.suptitle(title, x=0.02, ha="left", fontsize=12)
    if caption:
        fig.text(0.02, 0.01, caption, ha="left", va="bottom", fontsize=10, wrap=True)
    fig.tight_layout(rect=(0, 0.05 if caption else 0, 1, 0.95))
    fig.savefig(path)
