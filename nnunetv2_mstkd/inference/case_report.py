"""What to trust in a prediction: a report per case, its picture, and an index of the batch.

For each predicted case ``mstkd_predict --expected BENCH`` writes ``CASE_report.json``
beside the segmentation: the channels the case had and lacked, the benchmark's expected
Dice and HD95 per region for that subset (mean, SD, number of cases), the regions whose
expected Dice is below the threshold in plain words, the absent sequences ranked by the
expected gain of acquiring them, and the benchmark's provenance. ``--overlays`` writes
``CASE_overlay.png`` (:mod:`~nnunetv2_mstkd.inference.overlay`). With more than one case,
``report.md`` links every case with its flags. Every file is written atomically.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from nnunetv2_mstkd.atomic_io import atomic_path, write_json, write_text
from nnunetv2_mstkd.inference.expected_accuracy import Expectation
from nnunetv2_mstkd.regions import DISPLAY_SCALE

DICE_SCALE = DISPLAY_SCALE["Dice"]  # fraction to Dice points (per cent), as every table shows it


def case_report(case_id: str, channel_names: Sequence[str], absent: Sequence[int],
                expectation: Expectation | None, min_dice: float, empty: bool) -> dict:
    """The report of one case (see the module docstring); ``min_dice`` in Dice points (0-100)."""
    present = [i for i in range(len(channel_names)) if i not in absent]
    report = {"case": case_id, "present": [channel_names[i] for i in present],
              "absent": [channel_names[i] for i in absent], "empty_prediction": empty, "flags": []}
    if empty:
        report["flags"].append("The prediction is empty: no tumour was found in this case.")
    if expectation is None:
        return report
    expected = expectation.expected(present)
    report["expected"] = expected
    report["benchmark"] = expectation.provenance
    lacking = f"without {', '.join(report['absent'])}" if absent else "with every sequence"
    for region, metrics in expected.items():
        dice = metrics["Dice"]
        if DICE_SCALE * dice["mean"] < min_dice:
            report["flags"].append(
                f"{region}: expected Dice {DICE_SCALE * dice['mean']:.0f} ± {DICE_SCALE * dice['sd']:.0f} {lacking} "
                f"(benchmark of {dice['n']} cases), below {min_dice:g}; treat this region as uncertain.")
    if absent:
        report["acquire"] = expectation.acquisition_gains(present)
        best = report["acquire"][0]
        gains = ", ".join(f"{r} {g:+.1f}" for r, g in best["gain"].items())
        report["recommendation"] = (f"Acquiring {best['channel']} would help most: expected Dice {gains} points "
                                    f"(mean {best['mean_gain']:+.1f}).")
    return report


def caption(report: dict) -> str:
    """One line for the picture: the expected Dice per region, or what is known without a benchmark."""
    lacking = f"absent: {', '.join(report['absent'])}" if report["absent"] else "all sequences present"
    if "expected" not in report:
        return lacking
    b = report["benchmark"]
    dice = ", ".join(f"{r} {DICE_SCALE * m['Dice']['mean']:.0f} ± {DICE_SCALE * m['Dice']['sd']:.0f}"
                     for r, m in report["expected"].items())
    return f"{lacking}; expected Dice {dice} ({b['model']}, {b['n_cases']} benchmark cases)"


def write_case_outputs(report: dict, output_folder: str, image_files: Sequence[str | None],
                       channel_names: Sequence[str], seg: np.ndarray, regions: dict, spacing: Sequence[float],
                       write_report: bool, overlay: bool) -> dict[str, str]:
    """Write ``CASE_report.json`` and/or ``CASE_overlay.png``; returns their paths by kind."""
    paths = {}
    case = report["case"]
    if write_report:
        paths["report"] = os.path.join(output_folder, f"{case}_report.json")
        write_json(report, paths["report"])
    if overlay:
        # matplotlib only when pictures are asked for: it adds a third of a second to every start-up
        from nnunetv2_mstkd.inference.overlay import plot_overlay

        paths["overlay"] = os.path.join(output_folder, f"{case}_overlay.png")
        images = [None if f is None else sitk.GetArrayFromImage(sitk.ReadImage(f)) for f in image_files]
        title = f"{case}" + (" (empty prediction)" if report["empty_prediction"] else "")
        with atomic_path(paths["overlay"]) as tmp:
            plot_overlay(images, channel_names, seg, regions, tmp, title, caption(report), spacing)
    return paths


def index_markdown(reports: Sequence[dict], files: dict[str, dict[str, str]]) -> str:
    """``report.md``: one row per case with its absent sequences, flags and links to its files."""
    lines = ["# Prediction report", "", "| case | absent | flags | files |", "|---|---|---|---|"]
    for r in reports:
        links = " ".join(f"[{kind}]({os.path.basename(p)})" for kind, p in files.get(r["case"], {}).items())
        flags = "<br>".join(r["flags"] + ([r["recommendation"]] if "recommendation" in r else [])) or "none"
        lines.append(f"| {r['case']} | {', '.join(r['absent']) or '–'} | {flags} | {links} |")
    return "\n".join(lines) + "\n"


def write_index(reports: Sequence[dict], files: dict[str, dict[str, str]], output_folder: str) -> str:
    """Write ``report.md`` into ``output_folder`` atomically; returns its path."""
    path = os.path.join(output_folder, "report.md")
    write_text(index_markdown(reports, files), path)
    return path
