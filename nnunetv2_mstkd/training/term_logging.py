"""Per-epoch logging of the loss terms and their plot next to nnU-Net's ``progress.png``."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

#: Logged keys, in plot order, with their legend labels.
TERM_LABELS: dict[str, str] = {
    "loss_seg": "L_seg (nnU-Net)",
    "loss_mstkd": "L_MSTKD (weighted)",
    "loss_dmld": "L_DMLD (weighted)",
    "loss_gsme": "L_GSME (weighted)",
    "loss_att": "attention (raw)",
    "loss_feat": "features (raw)",
    "loss_prob": "prob. consistency (raw)",
    "loss_lskd": "logit-std. KL (raw)",
    "loss_gram": "Gram (raw)",
    "loss_adv": "adversarial (raw)",
    "loss_disc": "discriminator",
}


def log_epoch_terms(logging: dict, epoch_means: Mapping[str, float], epoch: int) -> None:
    """Append one value per key to nnU-Net's logger dict (``trainer.logger.local_logger.my_fantastic_logging``).

    Keys are created on first use, so checkpoints from before a key existed still resume.
    """
    for key, value in epoch_means.items():
        values = logging.setdefault(key, [])
        if len(values) > epoch:
            values[epoch] = value
        else:
            # An epoch without the term (e.g. resumed from an older checkpoint) is padded with NaN.
            values.extend([float("nan")] * (epoch - len(values)))
            values.append(value)


#: The lowest value nnU-Net's segmentation loss can take: it is cross-entropy (≥ 0) plus the negative
#: soft Dice (≥ −1), with deep-supervision weights that sum to 1, so a perfect prediction scores −1.
SEG_LOSS_MINIMUM = -1.0


def seg_headroom(loss_seg):
    """``L_seg − (−1)``: how far nnU-Net's loss is from its minimum; positive, unlike ``L_seg`` itself.

    ``L_seg`` crosses zero during training (Dice enters it with a minus sign), so neither it nor
    ``|L_seg|`` can serve as the scale the distillation terms are read against; its distance from
    the minimum can.
    """
    return np.asarray(loss_seg, dtype=float) - SEG_LOSS_MINIMUM


def fraction_summary(epoch_means: Mapping[str, float]) -> str:
    """One log line: each weighted family and its size relative to ``L_seg + 1`` (:func:`seg_headroom`)."""
    seg = epoch_means.get("loss_seg")
    parts = [f"seg {seg:.4f}"] if seg is not None else []
    head = float(seg_headroom(seg)) if seg is not None else 0.0
    for key in ("loss_mstkd", "loss_dmld", "loss_gsme", "loss_disc"):
        if key in epoch_means:
            frac = f" ({100 * epoch_means[key] / head:.1f}% of seg+1)" if head > 0 and key != "loss_disc" else ""
            parts.append(f"{key[5:]} {epoch_means[key]:.4f}{frac}")
    return "loss terms: " + ", ".join(parts)


#: Panels of ``loss_terms.png``: (title, y label, keys, divide by |L_seg|, log axis).
_PANELS = (
    ("nnU-Net's segmentation loss", "L_seg (Dice enters with a minus sign)", ("loss_seg",), False, False),
    ("Weighted families, relative to L_seg + 1 (its distance from the minimum −1)", "term / (L_seg + 1), log",
     ("loss_mstkd", "loss_dmld", "loss_gsme"),
     True, True),
    ("Unweighted parts and the discriminator", "value, log", ("loss_att", "loss_feat", "loss_prob", "loss_lskd",
                                                               "loss_gram", "loss_adv", "loss_disc"), False, True),
)


def plot_loss_terms(logging: Mapping[str, Sequence[float]], output_folder: str,
                    filename: str = "loss_terms.png") -> str:
    """Plot the logged loss terms per epoch to ``output_folder/filename``; returns the path.

    Three panels: nnU-Net's segmentation loss on a linear axis (it goes negative), the weighted
    families as fractions of ``L_seg + 1`` (:func:`seg_headroom`, positive) on a log axis, and the
    unweighted parts on a log axis. Every curve of a panel has its own colour.
    """
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    seg = seg_headroom(logging.get("loss_seg", []))
    # nnU-Net's own progress plot sets a global seaborn style with 2.5x fonts in the training process
    with plt.style.context("default"):
        fig, axes = plt.subplots(3, 1, figsize=(11, 11), sharex=True, layout="constrained")
        colours = plt.get_cmap("tab10").colors
        for ax, (title, ylabel, keys, relative, log) in zip(axes, _PANELS):
            drawn = 0
            for i, key in enumerate(keys):
                values = np.asarray(logging.get(key, []), dtype=float)
                if relative:
                    n = min(values.size, seg.size)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        values = values[:n] / seg[:n]
                if log:
                    values = np.where(values > 0, values, np.nan)
                if not (values.size and np.isfinite(values).any()):
                    continue
                ax.plot(np.arange(values.size), values, label=TERM_LABELS[key], color=colours[i % len(colours)],
                        linewidth=2, marker="o" if values.size < 30 else None, markersize=3)
                drawn += 1
            if log and drawn:
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())
                if relative:  # often within one decade: label 1-2-5 steps, as percentages
                    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g} %"))
            ax.set_title(title, loc="left", fontsize=11)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, which="both")
            if drawn:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        axes[-1].set_xlabel("epoch")
        fig.suptitle("MST-KD loss terms (per-epoch means)")
    path = os.path.join(output_folder, filename)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
