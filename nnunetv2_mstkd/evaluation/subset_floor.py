"""Is a model at least as good as the better of its baselines on every subset and region?

A 15-subset mean can hide a subset where a model is worse than a simpler one (for example with
every sequence present). :func:`subset_floor` compares, for each (subset, region) cell, a model
with the better of some baselines in that cell (by the mean over cases), paired by case: the
mean difference with a 95 % t-interval, the paired two-sided Wilcoxon signed-rank test over the
cases (Holm-corrected over all cells), and whether the cell holds the floor "at least the better
baseline minus ``margin`` Dice points". The unit of a test is the case, as in
:mod:`~nnunetv2_mstkd.evaluation.stats`; here each cell is tested on its own.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.stats import t as student_t

from nnunetv2_mstkd.evaluation.stats import holm, signed_rank_test
from nnunetv2_mstkd.regions import DISPLAY_SCALE


def _scores(rows: Iterable[dict], metric: str) -> dict[tuple[str, str, str], dict[str, float]]:
    """``(model, subset, region) -> {case: value}``, several folds of one case averaged."""
    acc: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for r in rows:
        acc.setdefault((r["model"], r["subset"], r["region"]), {}).setdefault(r["case"], []).append(float(r[metric]))
    return {k: {c: float(np.mean(v)) for c, v in cases.items()} for k, cases in acc.items()}


def subset_floor(rows: Iterable[dict], model: str, baselines: Sequence[str], subsets: Sequence[str],
                 regions: Sequence[str], margin: float = 1.0, metric: str = "Dice",
                 holm_per_region: bool = False) -> list[dict]:
    """Per (subset, region): ``model`` against the better of ``baselines`` in that cell.

    Args:
        rows: Per-case rows of a benchmark (``per_case.csv``): ``case, model, subset, region`` and ``metric``.
        model: The model under test.
        baselines: The models it must not fall behind.
        subsets: Subset labels, in the order of the output.
        regions: Region names, in the order of the output.
        margin: Allowed shortfall in display units (Dice points).
        metric: ``"Dice"`` (higher is better; the only one supported).
        holm_per_region: Holm within each region (over its subsets) instead of over all cells.

    Returns:
        One dict per cell, subsets outer, with ``subset, region, n`` (cases both have), ``model_mean``,
        ``baseline`` (the better baseline's name), ``baseline_mean``, ``diff`` (model − baseline, in display
        units), ``ci_low``, ``ci_high`` (95 % t-interval of the mean paired difference), ``p`` (two-sided
        Wilcoxon), ``p_holm`` (over all cells, or the region's), ``holm_family`` (how many cells),
        ``holds`` (``diff >= -margin``) and ``worse``
        (``diff < 0`` and ``p_holm < 0.05``).

    Raises:
        ValueError: For a metric other than Dice, or a model or baseline without rows in some cell.
    """
    if metric != "Dice":
        raise ValueError(f"subset_floor compares Dice (higher is better), not {metric!r}.")
    scale = DISPLAY_SCALE[metric]
    scores = _scores(rows, metric)
    out = []
    for subset in subsets:
        for region in regions:
            missing = [m for m in [model, *baselines] if (m, subset, region) not in scores]
            if missing:
                raise ValueError(f"No {metric} rows for {missing} in subset {subset!r}, region {region!r}.")
            mine = scores[(model, subset, region)]
            base = max(baselines, key=lambda b: np.mean(list(scores[(b, subset, region)].values())))
            theirs = scores[(base, subset, region)]
            cases = sorted(set(mine) & set(theirs))
            d = np.array([mine[c] - theirs[c] for c in cases]) * scale
            n = d.size
            half = float(student_t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            _, p, _ = signed_rank_test(d)
            diff = float(d.mean()) if n else math.nan
            out.append({"subset": subset, "region": region, "n": n,
                        "model_mean": scale * float(np.mean([mine[c] for c in cases])), "baseline": base,
                        "baseline_mean": scale * float(np.mean([theirs[c] for c in cases])), "diff": diff,
                        "ci_low": diff - half, "ci_high": diff + half, "p": p, "holds": diff >= -margin})
    families = [[r for r in out if r["region"] == region] for region in regions] if holm_per_region else [out]
    for family in families:
        for r, adjusted in zip(family, holm([r["p"] for r in family])):
            r["p_holm"], r["holm_family"] = adjusted, len(family)
            r["worse"] = bool(r["diff"] < 0 and adjusted < 0.05)
    return out


def subset_floor_markdown(cells: Sequence[dict], model: str, margin: float = 1.0) -> str:
    """A Markdown table of :func:`subset_floor`'s cells and a one-line verdict."""
    lines = [f"| subset | region | n | {model} | better baseline | baseline | Δ (95 % CI) | p (Holm) | "
             f"≥ baseline − {margin:g} |", "|---|---|---:|---:|---|---:|---|---:|---|"]
    for c in cells:
        p = "<0.001" if c["p_holm"] < 0.001 else f"{c['p_holm']:.3f}"
        flag = ("yes" if c["holds"] else "**no**") + (", significantly worse" if c["worse"] else "")
        lines.append(f"| {c['subset']} | {c['region']} | {c['n']} | {c['model_mean']:.1f} | {c['baseline']} | "
                     f"{c['baseline_mean']:.1f} | {c['diff']:+.1f} ({c['ci_low']:+.1f}, {c['ci_high']:+.1f}) | "
                     f"{p} | {flag} |")
    short = sum(not c["holds"] for c in cells)
    worse = sum(c["worse"] for c in cells)
    lines += ["", f"{model}: {len(cells) - short} of {len(cells)} cells at least the better baseline − "
                  f"{margin:g}; {worse} significantly worse after Holm over {cells[0]['holm_family']}"
                  f"{' (per region)' if cells[0]['holm_family'] < len(cells) else ''}."]
    return "\n".join(lines)


def plot_subset_floor(cells: Sequence[dict], model: str, path, margin: float = 1.0):
    """Save a PNG of each cell's difference to the better baseline with its 95 % interval, a panel per region.

    Points below ``-margin`` are drawn in red, significantly worse cells (Holm) as filled red squares.
    Rendered by Agg through matplotlib's object API, so it needs no display.
    """
    from pathlib import Path

    from matplotlib.figure import Figure

    regions = list(dict.fromkeys(c["region"] for c in cells))
    subsets = list(dict.fromkeys(c["subset"] for c in cells))
    fig = Figure(figsize=(2.0 + 0.55 * len(subsets), 1.0 + 2.2 * len(regions)), layout="constrained")
    axes = fig.subplots(len(regions), 1, squeeze=False, sharex=True)
    for ax, region in zip(axes[:, 0], regions):
        mine = [c for c in cells if c["region"] == region]
        x = np.arange(len(mine))
        for xi, c in zip(x, mine):
            colour = "tab:blue" if c["holds"] else "tab:red"
            ax.errorbar(xi, c["diff"], yerr=[[c["diff"] - c["ci_low"]], [c["ci_high"] - c["diff"]]],
                        fmt="s" if c["worse"] else "o", color=colour, capsize=3, markersize=5)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(-margin, color="tab:red", linewidth=0.8, linestyle="--")
        ax.set_ylabel(f"{region}: Δ Dice")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(np.arange(len(subsets)), subsets, rotation=45, ha="right")
    fig.suptitle(f"{model} minus the better baseline per subset (95 % CI; dashed: −{margin:g})", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=120, format="png")
    return path
