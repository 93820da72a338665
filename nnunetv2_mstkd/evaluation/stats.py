"""Paired case-level Wilcoxon signed-rank tests of one model against the others, Holm-corrected.

Every case is evaluated under every modality subset (and, with several folds or seeds
evaluated on the same cases, by several models of each kind). The 15 subsets of one case
are not independent, so the unit of a test is the **case**: each model's score of a case
is its mean over the (fold, subset) pairs that both models have for that case, and the
test asks whether the differences ``reference − other`` over cases are centred on zero
(two-sided; Wilcoxon, 1945, via ``scipy.stats.wilcoxon``). Cases with a zero difference
are dropped before ranking (Wilcoxon's own convention). Holm's step-down correction
(Holm, 1979) controls the family-wise error within each metric and region, over the
comparisons of the reference with the other models.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.stats import wilcoxon

from nnunetv2_mstkd.evaluation.metrics import HIGHER_IS_BETTER
from nnunetv2_mstkd.regions import DISPLAY_SCALE

#: Trainer-name suffixes of the ablation variants; such a model is never the default reference.
ABLATION_SUFFIXES: tuple[str, ...] = ("_noMSTKD", "_noDMLD", "_noGSME", "_noKD", "_noInit", "_initOnly")
#: Fewer non-zero differences than this cannot reach p < 0.05 two-sided (the smallest exact p is 2 / 2**n).
MIN_NONZERO_FOR_5PCT = 6


def default_reference_model(models: Sequence[str]) -> str:
    """The first student: a model named ``nnUNetTrainerMSTKD...``, neither an ablation variant nor the teacher.

    Raises:
        ValueError: If there is none; the message lists the models.
    """
    for m in models:
        student = m.startswith("nnUNetTrainerMSTKD") and not m.startswith("nnUNetTrainerMSTKDTeacher")
        if student and not any(s in m for s in ABLATION_SUFFIXES):
            return m
    raise ValueError(f"No full MST-KD model (nnUNetTrainerMSTKD without {list(ABLATION_SUFFIXES)}) among "
                     f"{list(models)}; pass reference_model explicitly.")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, ``p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j))``; NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out.tolist()


def signed_rank_test(diffs: np.ndarray) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank test of paired differences: ``(statistic, p, note)``; zeros dropped first."""
    nonzero = diffs[diffs != 0]
    if diffs.size == 0:
        return math.nan, math.nan, "no case with a common subset"
    if nonzero.size == 0:
        return 0.0, 1.0, "all differences are zero"
    res = wilcoxon(nonzero, alternative="two-sided")
    note = "" if nonzero.size >= MIN_NONZERO_FOR_5PCT else (
        f"only {nonzero.size} non-zero differences: p cannot fall below 0.05")
    return float(res.statistic), float(res.pvalue), note


def wilcoxon_tests(rows: Iterable[dict], reference_model: str | None = None,
                   metrics: Sequence[str] = ("Dice", "HD95")) -> list[dict]:
    """Test the reference model against each other model, per region and metric, over cases.

    Args:
        rows: Per-case rows with ``case, model, subset, region`` and the metric columns, and
            optionally ``fold`` (several folds' models scored on the same case are averaged).
        reference_model: Exact model name; defaults to :func:`default_reference_model`.
        metrics: Metric columns to test.

    Returns:
        One dict per (other model, metric, region), in first-seen order, with keys
        ``reference, model, region, metric, n`` (cases), ``n_nonzero``, ``median_diff``,
        ``mean_diff`` (reference minus other, the metric's unit), ``statistic`` (the
        smaller signed-rank sum), ``p``, ``p_holm`` (Holm within the metric and region), ``better``
        (``reference``, the other model's name, or ``tie``; by the median difference, then the mean) and ``note``.

    Raises:
        ValueError: If the reference model has no rows or a metric is unknown.
    """
    unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; known: {list(HIGHER_IS_BETTER)}.")
    scores: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
    models, regions = {}, {}
    for r in rows:
        models.setdefault(r["model"], None)
        regions.setdefault(r["region"], None)
        by_pair = scores.setdefault((r["model"], r["region"]), {})
        key = (r["case"], str(r.get("fold", "")), r["subset"])
        if key in by_pair:
            raise ValueError(f"Two rows for case {r['case']!r}, fold {key[1]!r}, subset {r['subset']!r}, model "
                             f"{r['model']!r}, region {r['region']!r}; each needs exactly one.")
        by_pair[key] = r
    ref = default_reference_model(list(models)) if reference_model is None else reference_model
    if ref not in models:
        raise ValueError(f"Reference model {ref!r} has no rows; models present: {list(models)}.")
    results = []
    for other in (m for m in models if m != ref):
        for metric in metrics:
            for region in regions:
                a, b = scores.get((ref, region), {}), scores.get((other, region), {})
                d = _case_differences(a, b, metric)
                stat, p, note = signed_rank_test(d)
                median = float(np.median(d)) if d.size else math.nan
                mean = float(d.mean()) if d.size else math.nan
                lead = median if median else mean
                sign = lead if HIGHER_IS_BETTER[metric] else -lead
                better = "tie" if not sign or not math.isfinite(sign) else (ref if sign > 0 else other)
                results.append({"reference": ref, "model": other, "region": region, "metric": metric,
                                "n": int(d.size), "n_nonzero": int(np.count_nonzero(d)), "median_diff": median,
                                "mean_diff": mean, "statistic": stat, "p": p, "better": better, "note": note})
    for metric in metrics:
        for region in regions:
            family = [r for r in results if r["metric"] == metric and r["region"] == region]
            for r, adjusted in zip(family, holm([r["p"] for r in family])):
                r["p_holm"] = adjusted
    return results


def _case_differences(a: dict, b: dict, metric: str) -> np.ndarray:
    """Per case: mean over the (fold, subset) pairs both models have of ``a − b``; sorted by case."""
    by_case: dict[str, list[float]] = {}
    for key in sorted(set(a) & set(b)):
        by_case.setdefault(key[0], []).append(float(a[key][metric]) - float(b[key][metric]))
    return np.array([np.mean(v) for _, v in sorted(by_case.items())], dtype=float)


def _p(p: float) -> str:
    return "–" if not math.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _diff(v: float, metric: str) -> str:
    return "–" if not math.isfinite(v) else f"{DISPLAY_SCALE[metric] * v:+.2f}"


def wilcoxon_markdown(results: Sequence[dict]) -> str:
    """GitHub Markdown table of :func:`wilcoxon_tests` results, preceded by a legend line."""
    n = sum(math.isfinite(r["p"]) for r in results)
    families = len({(r["metric"], r["region"]) for r in results})
    legend = ("Paired two-sided Wilcoxon signed-rank tests over cases (n): each case's score is its mean over the "
              "modality subsets (and folds) both models have, so the 15 subsets of a case count once; "
              "Δ = reference − other (Dice in percentage points, HD95 in mm); Holm correction within each metric "
              f"and region ({families} families, {n} tests in all).")
    lines = [legend, "",
             "| Reference | vs | Metric | Region | n | median Δ | mean Δ | W | p | p (Holm) | better | note |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        stat = "–" if not math.isfinite(r["statistic"]) else f"{r['statistic']:g}"
        lines.append(f"| {r['reference']} | {r['model']} | {r['metric']} | {r['region']} | {r['n']} | "
                     f"{_diff(r['median_diff'], r['metric'])} | {_diff(r['mean_diff'], r['metric'])} | {stat} | "
                     f"{_p(r['p'])} | {_p(r['p_holm'])} | {r['better']} | {r['note']} |")
    return "\n".join(lines) + "\n"
