"""What a benchmark says about a case with a given set of sequences: expected accuracy and what to acquire.

``mstkd_benchmark`` measures every model on all 15 modality subsets; its
``summary.json`` holds, per model, subset, region and metric, the mean and SD over
the benchmark's cases. For a case predicted with some sequences absent this module
gives:

* :meth:`Expectation.expected`: the benchmark's mean, SD and number of cases of Dice
  and HD95 per region for that case's subset;
* :meth:`Expectation.acquisition_gains`: for each absent sequence, the expected Dice
  gain per region (and their mean) of adding it, ranked; :func:`gain_rows` gives the
  whole table for every subset.

A benchmark made for another dataset, trainer, plans, configuration, channel set or
label set is refused with the difference named (:meth:`Expectation.check_model`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from nnunetv2_mstkd.modalities import all_subsets, channel_names_of, subset_label
from nnunetv2_mstkd.regions import DISPLAY_SCALE

DICE_SCALE = DISPLAY_SCALE["Dice"]  # fraction to Dice points (per cent), as every table shows it


@dataclass
class Expectation:
    """One model's results in a benchmark summary.

    Attributes:
        model: The trainer name as the benchmark lists it.
        channel_names: The model's channel names, in channel order.
        results: ``summary["results"][model]``: subset label -> region -> metric -> ``{mean, std, n}``.
        provenance: Dataset, model, plans, configuration, folds, cases and the benchmark file.
    """

    model: str
    channel_names: list[str]
    results: dict
    provenance: dict

    @property
    def regions(self) -> list[str]:
        return list(next(iter(self.results.values())))

    def expected(self, present: Sequence[int]) -> dict[str, dict[str, dict[str, float]]]:
        """Region -> metric -> ``{"mean", "sd", "n"}`` for the subset of channel indices ``present``."""
        label = subset_label(present, self.channel_names)
        if label not in self.results:
            raise ValueError(f"The benchmark has no results for the subset {label} of {self.model}.")
        return {region: {metric: {"mean": v["mean"], "sd": v["std"], "n": v["n"]} for metric, v in by_metric.items()}
                for region, by_metric in self.results[label].items()}

    def acquisition_gains(self, present: Sequence[int]) -> list[dict]:
        """For each absent channel, the expected Dice gain of adding it, best first.

        Returns:
            ``[{"channel", "gain": {region: points}, "mean_gain"}]``, Dice gains in points (×100), sorted
            by ``mean_gain`` (the mean over regions), largest first; ties keep channel order.
        """
        present = sorted(set(present))
        now = self.expected(present)
        out = []
        for channel in (c for c in range(len(self.channel_names)) if c not in present):
            after = self.expected(sorted(present + [channel]))
            gain = {r: DICE_SCALE * (after[r]["Dice"]["mean"] - now[r]["Dice"]["mean"]) for r in self.regions}
            out.append({"channel": self.channel_names[channel], "gain": gain,
                        "mean_gain": sum(gain.values()) / len(gain)})
        return sorted(out, key=lambda g: -g["mean_gain"])

    def check_model(self, dataset_json: dict, dataset: str, trainer: str, plans: str, configuration: str) -> None:
        """Raise ``ValueError`` naming every difference between the benchmark and the model to predict with."""
        p = self.provenance
        wanted = {"dataset": dataset, "plans": plans, "configuration": configuration}
        differences = [f"{key}: benchmark {p.get(key)!r}, model {value!r}" for key, value in wanted.items()
                       if p.get(key) is not None and p.get(key) != value]
        if self.model != trainer:
            differences.append(f"trainer: benchmark {self.model!r}, model {trainer!r}")
        names = channel_names_of(dataset_json)
        if self.channel_names != names:
            differences.append(f"channels: benchmark {self.channel_names}, model {names}")
        if p.get("labels") is not None and p["labels"] != dataset_json.get("labels"):
            differences.append(f"labels: benchmark {p['labels']}, model {dataset_json.get('labels')}")
        if differences:
            raise ValueError(f"The benchmark {p['file']} was not made for this model: " + "; ".join(differences) +
                             ". Give the summary of a benchmark of the same model (mstkd_benchmark -tr "
                             f"{trainer} -p {plans} -c {configuration}).")


def _summary_path(path: str) -> str:
    candidate = os.path.join(path, "summary.json") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise FileNotFoundError(f"Benchmark summary {candidate} not found. Give an mstkd_benchmark output folder "
                                f"or its summary.json.")
    return candidate


def load_expectation(path: str, trainer: str) -> Expectation:
    """Read ``trainer``'s results from a benchmark output folder or its ``summary.json``.

    Raises:
        FileNotFoundError: No summary there.
        ValueError: The file is not valid JSON (e.g. truncated), lacks the benchmark's fields, or does
            not hold ``trainer`` (the message lists the models it holds).
    """
    file = _summary_path(path)
    try:
        with open(file, encoding="utf-8") as f:
            summary = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"Benchmark summary {file} is not valid JSON ({e}); it may be truncated. Re-run "
                         f"mstkd_benchmark or give another summary.") from e
    missing = [k for k in ("results", "subsets", "benchmark") if k not in summary]
    if missing:
        raise ValueError(f"{file} is not an mstkd_benchmark summary (it lacks {', '.join(missing)}).")
    if trainer not in summary["results"]:
        raise ValueError(f"The benchmark {file} has no results for {trainer}; it holds "
                         f"{', '.join(summary['results'])}.")
    meta = summary["benchmark"]
    channel_names = meta.get("channel_names")
    if channel_names is None:
        raise ValueError(f"{file} does not record the model's channels (written by an older mstkd_benchmark); "
                         f"re-run the benchmark.")
    provenance = {"file": file, "model": trainer, "dataset": meta.get("dataset"), "plans": meta.get("plans"),
                  "configuration": meta.get("configuration"), "folds": meta.get("fold"),
                  "n_cases": meta.get("n_cases"), "cases_source": meta.get("cases_source"),
                  "labels": meta.get("labels")}
    return Expectation(trainer, list(channel_names), summary["results"][trainer], provenance)


def gain_rows(expectation: Expectation) -> list[dict]:
    """The gain of adding each absent channel to every subset: one row per (subset, channel, region).

    Rows: ``subset``, ``added``, ``region``, ``dice_before``, ``dice_after``, ``gain`` (Dice points).
    """
    n = len(expectation.channel_names)
    rows = []
    for present in all_subsets(n)[:-1]:  # every subset but the complete one, which lacks nothing
        before = expectation.expected(present)
        for channel in (c for c in range(n) if c not in present):
            after = expectation.expected(sorted(present + (channel,)))
            for region in expectation.regions:
                b, a = before[region]["Dice"]["mean"], after[region]["Dice"]["mean"]
                rows.append({"subset": subset_label(present, expectation.channel_names),
                             "added": expectation.channel_names[channel], "region": region,
                             "dice_before": round(DICE_SCALE * b, 2), "dice_after": round(DICE_SCALE * a, 2),
                             "gain": round(DICE_SCALE * (a - b), 2)})
    return rows
