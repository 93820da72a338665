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


def fraction_summary(epoch_means: Mapping[str, float]) -> str:
    """One log line: each weighted family and its fraction of ``L_seg``."""
    seg = epoch_means.get("loss_seg")
    parts = [f"seg {seg:.4f}"] if seg is not None else []
    for key in ("loss_mstkd", "loss_dmld", "loss_gsme", "loss_disc"):
        if key in epoch_means:
            frac = f" ({100 * epoch_means[key] / seg:.1f}% of seg)" if seg and key != "loss_disc" else ""
            parts.append(f"{key[5:]} {epoch_means[key]:.4f}{frac}")
    return "loss terms: " + ", ".join(parts)


def plot_loss_terms(logging: Mapping[str, Sequence[float]], output_folder: str,
                    filename: str = "loss_terms.png") -> str:
    """Plot every logged loss term per epoch (log scale) to ``output_folder/filename``; returns the path."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 7))
    for key, label in TERM_LABELS.items():
        values = np.asarray(logging.get(key, []), dtype=float)
        if values.size and np.isfinite(values).any():
            ax.plot(np.arange(values.size), np.abs(values), label=label, linewidth=2,
                    ls="-" if "raw" not in label else "--")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (per-epoch mean, log scale)")
    ax.set_title("MST-KD loss terms")
    ax.legend(loc="upper right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(output_folder, filename)
    fig.savefig(path)
    plt.close(fig)
    return path
