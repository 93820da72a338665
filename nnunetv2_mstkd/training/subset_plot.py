"""``progress_subsets.png``: the online pseudo Dice of every modality subset, next to nnU-Net's ``progress.png``."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np


def plot_subset_dice(logging: Mapping[str, Sequence], labels: Sequence[str], output_folder: str,
                     last_epoch: int | None = None, filename: str = "progress_subsets.png") -> str:
    """Plot per epoch the mean over subsets (what selects ``checkpoint_best.pth``), its EMA, the complete
    input, the worst subset seen, and each subset as a thin line; returns the path.

    Args:
        logging: nnU-Net's logger dict with ``mean_fg_dice``, ``ema_fg_dice``, ``subset_pseudo_dice``
            (one list of per-subset values per epoch) and ``complete_pseudo_dice``.
        labels: The subset labels, in the order of ``subset_pseudo_dice``'s lists.
        output_folder: Where the file goes.
        last_epoch: Plot epochs ``0..last_epoch`` (default: all logged).
        filename: File name.
    """
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from nnunetv2_mstkd.training.subset_validation import COMPLETE_DICE_KEY, SUBSET_DICE_KEY, nan_quiet

    n = len(logging.get(SUBSET_DICE_KEY, [])) if last_epoch is None else last_epoch + 1
    per_subset = np.array([v if isinstance(v, (list, tuple)) and len(v) == len(labels) else [np.nan] * len(labels)
                           for v in logging.get(SUBSET_DICE_KEY, [])[:n]], dtype=float).reshape(-1, len(labels))
    epochs = np.arange(per_subset.shape[0])
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(11, 6), layout="constrained")
        colours = plt.get_cmap("tab20").colors
        marker = "o" if epochs.size < 30 else None
        for i, label in enumerate(labels):
            ax.plot(epochs, per_subset[:, i], color=colours[i % len(colours)], linewidth=0.8, alpha=0.6,
                    marker=marker, markersize=2, label=label)
        for key, name, style in (("mean_fg_dice", "mean over subsets (selects checkpoint_best)", "-"),
                                 ("ema_fg_dice", "its EMA", "--"),
                                 (COMPLETE_DICE_KEY, "complete input", ":")):
            values = np.asarray(logging.get(key, [])[:n], dtype=float)
            ax.plot(np.arange(values.size), values, "k" + style, linewidth=2.5, label=name)
        with nan_quiet():
            worst = np.nanmin(per_subset, axis=1) if per_subset.size else np.array([])
        ax.plot(epochs, worst, color="tab:red", linewidth=2, label="worst subset seen")
        ax.set_xlabel("epoch")
        ax.set_ylabel("pseudo Dice (validation patches)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_title("Online validation per modality subset (each batch one subset, rotating)", loc="left")
    path = os.path.join(output_folder, filename)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
