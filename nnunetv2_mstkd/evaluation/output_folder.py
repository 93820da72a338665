"""The benchmark's output folder: every file it holds (CSVs, summary, heatmap, timing, ``results.md``).

Every file is written with :mod:`nnunetv2_mstkd.atomic_io`, so an interrupted run
leaves the previous version or nothing, never half a file.
"""
from __future__ import annotations

import csv
import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

from nnunetv2_mstkd.atomic_io import atomic_path, write_text
from nnunetv2_mstkd.evaluation.acquisition import (
    ACQUISITION_COLUMNS,
    acquisition_markdown,
    acquisition_rows,
    plot_acquisition,
)
from nnunetv2_mstkd.evaluation.folds import fold_markdown
from nnunetv2_mstkd.evaluation.metrics import metrics_of
from nnunetv2_mstkd.evaluation.summary import (
    default_reference_model,
    markdown_table,
    plot_dice_heatmap,
    wilcoxon_markdown,
    wilcoxon_tests,
    write_per_case_csv,
    write_summary_json,
)

#: Columns of ``wilcoxon.csv``, as :func:`~nnunetv2_mstkd.evaluation.stats.wilcoxon_tests` names them.
WILCOXON_COLUMNS = ("reference", "model", "region", "metric", "n", "n_nonzero", "median_diff", "mean_diff",
                    "statistic", "p", "p_holm", "better", "note")
#: Columns of ``timing.csv``.
TIMING_COLUMNS = ("case", "fold", "model", "preprocessing_s", "preprocessed_by", "inference_mean_s",
                  "inference_total_s",
                  "n_subsets")


def write_csv(rows: Sequence[dict], columns: Sequence[str], path: str) -> None:
    """Write rows with the given columns (missing keys blank, extra keys dropped) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _seconds(values: Sequence[float]) -> str:
    return "–" if not values else f"{np.mean(values):.2f}"


def timing_markdown(timing: Sequence[dict], models: Sequence[str]) -> str:
    """Markdown table of mean seconds per case: preprocessing, inference per subset and per case (all subsets).

    A model that reused another model's preprocessing shows that model's time, marked "shared".
    """
    own = {(r["case"], r["model"]): float(r["preprocessing_s"]) for r in timing if r["preprocessing_s"] != ""}
    lines = ["| Model | preprocessing (s/case) | inference per subset (s) | inference per case, all subsets (s) |",
             "|---|---:|---:|---:|"]
    for m in models:
        rows = [r for r in timing if r["model"] == m]
        pre = [own[(r["case"], r["preprocessed_by"])] for r in rows]
        shared = sorted({r["preprocessed_by"] for r in rows} - {m})
        note = f" (shared, by {', '.join(shared)})" if shared else ""
        lines.append(f"| {m} | {_seconds(pre)}{note} | {_seconds([r['inference_mean_s'] for r in rows])} | "
                     f"{_seconds([r['inference_total_s'] for r in rows])} |")
    runs = len(own)
    cases = len({r["case"] for r in timing})
    return "\n".join(lines) + f"\n\nPreprocessing ran {runs} time(s) for {cases} case(s): once per case and " \
                              f"preprocessing, shared by the models whose plans and configuration preprocess alike.\n"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def machine_description(device: torch.device) -> str:
    """One line: operating system, CPU, GPU (on CUDA), and the Python, torch and nnU-Net versions."""
    parts = [f"{platform.system()} {platform.machine()}",
             f"CPU {_cpu_name()} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"]
    if device.type == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(device)}")
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__}, nnU-Net {_version('nnunetv2')}")
    return "; ".join(parts)


def results_markdown(meta: dict, summary: dict, subset_order: Sequence[str], models: Sequence[str],
                     wilcoxon_section: str, timing: Sequence[dict]) -> str:
    """The whole ``results.md``: header, results table, Wilcoxon tests, timing.

    Args:
        meta: Header fields: ``dataset, configuration, plans, fold, checkpoint, cases_source, n_cases, tta,
            step_size, device, command, machine, skipped`` (model -> reason).
        summary: From :func:`~nnunetv2_mstkd.evaluation.summary.summarize`.
        subset_order: Subset labels in column order.
        models: Models in row order.
        wilcoxon_section: Markdown of the tests, or a note saying why there are none.
        timing: Rows of ``timing.csv``.
    """
    header = [
        f"# Missing-modality benchmark: {meta['dataset']}", "",
        f"- Dataset: {meta['dataset']}; configuration {meta['configuration']}, plans {meta['plans']}, "
        f"{'folds' if ',' in str(meta['fold']) else 'fold'} {meta['fold']}, checkpoint {meta['checkpoint']}",
        f"- Cases: {meta['n_cases']} ({meta['cases_source']})",
        f"- Models: {', '.join(models)}",
        f"- Inference: device {meta['device']}, test-time mirroring {'on' if meta['tta'] else 'off'}, "
        f"tile step {meta['step_size']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {meta['machine']}",
    ]
    for model, reason in meta["skipped"].items():
        header.append(f"- Skipped {model}: {reason}")
    intro = ("Each case is preprocessed once with all its modalities; for a subset the absent channels are set to "
             "zero after nnU-Net's normalisation, as in training with modality dropout. Mean over cases; Dice in %, "
             "HD95 in mm; best value per column in bold; Avg is the mean over the subsets. Both masks empty: Dice "
             "100, HD95 0; exactly one empty: Dice 0, HD95 = the volume diagonal in mm.")
    table = markdown_table(summary, subset_order, models)
    parts = ["\n".join(header), "## Results", intro, table.rstrip("\n")]
    if "across_folds" in summary:
        parts += ["## Across folds",
                  "Each fold's model scored on its own cases; per model, the mean over the subsets (Avg) for each "
                  "fold, then mean ± sample SD across folds (Dice in %, HD95 in mm). The SD is the run-to-run noise "
                  "that any difference between models must be read against.",
                  fold_markdown(summary["across_folds"], models, summary["regions"]).rstrip("\n")]
    parts += ["## Paired Wilcoxon signed-rank tests", wilcoxon_section.rstrip("\n"),
             "## Timing", timing_markdown(timing, models).rstrip("\n")]
    return "\n\n".join(parts) + "\n"


def wilcoxon_section(rows: Sequence[dict], models: Sequence[str], reference: str | None) -> tuple[list[dict], str]:
    """The paired tests of ``reference`` (default: the full MSTKD model) against the others, and their Markdown.

    Without a reference model, or with a single model, there are no tests and the Markdown says why.
    """
    if reference is None:
        try:
            reference = default_reference_model(models)
        except ValueError:
            return [], ("No test: no nnUNetTrainerMSTKD model among those evaluated (choose a reference with "
                        "--reference).\n")
    if len(models) < 2:
        return [], f"No test: {reference} is the only model evaluated.\n"
    results = wilcoxon_tests(rows, reference, metrics=metrics_of(rows))
    return results, wilcoxon_markdown(results)


def write_outputs(paths: dict[str, str], rows: Sequence[dict], timing: Sequence[dict], summary: dict,
                  models: Sequence[str], reference: str | None, meta: dict) -> None:
    """Write every benchmark file, each atomically.

    Args:
        paths: Destination per key of :data:`~nnunetv2_mstkd.evaluation.benchmark.OUTPUT_FILES`.
        rows: Per-case rows.
        timing: Rows of ``timing.csv``.
        summary: From :func:`~nnunetv2_mstkd.evaluation.summary.summarize`; ``meta`` is stored beside it
            under ``"benchmark"`` in ``summary.json``.
        models: Models in row order.
        reference: Reference model of the Wilcoxon tests, or None for the default.
        meta: Header fields of :func:`results_markdown`.
    """
    subset_order = summary["subsets"]
    with atomic_path(paths["per_case_csv"]) as tmp:
        write_per_case_csv(rows, tmp)
    with atomic_path(paths["summary_json"]) as tmp:
        write_summary_json({**summary, "benchmark": meta}, tmp)
    with atomic_path(paths["dice_heatmap"]) as tmp:
        plot_dice_heatmap(summary, subset_order, models, tmp)
    tests, section = wilcoxon_section(rows, models, reference)
    write_csv(tests, WILCOXON_COLUMNS, paths["wilcoxon_csv"])
    write_csv(timing, TIMING_COLUMNS, paths["timing_csv"])
    write_text(results_markdown(meta, summary, subset_order, models, section, timing), paths["results_md"])
    if "acquisition_csv" in paths and meta.get("channel_names"):  # summaries of older versions lack the channels
        gains = acquisition_rows(summary, meta["channel_names"], models)
        write_csv(gains, ACQUISITION_COLUMNS, paths["acquisition_csv"])
        write_text(acquisition_markdown(gains, models, meta["channel_names"]), paths["acquisition_md"])
        with atomic_path(paths["acquisition_png"]) as tmp:
            plot_acquisition(gains, models, meta["channel_names"], tmp)
