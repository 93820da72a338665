"""The per-subset floor: a model against the better of its baselines in every (subset, region) cell."""
from __future__ import annotations

import csv
import json
import math

import pytest

from nnunetv2_mstkd.evaluation.subset_floor import subset_floor
from nnunetv2_mstkd.evaluation.subset_floor_cli import write_subset_floor

# Dice per case (fractions); subset "A": model 0.80/0.90/0.70, base1 0.82/0.92/0.74, base2 0.50 each;
# subset "B": model 0.60 each, base1 0.20, base2 0.10/0.30/0.20 (means 0.2 and 0.2: the first listed wins).
SCORES = {
    ("A", "model"): [0.80, 0.90, 0.70], ("A", "base1"): [0.82, 0.92, 0.74], ("A", "base2"): [0.5, 0.5, 0.5],
    ("B", "model"): [0.6, 0.6, 0.6], ("B", "base1"): [0.2, 0.2, 0.2], ("B", "base2"): [0.1, 0.3, 0.2],
}


def rows():
    return [{"case": f"c{i}", "model": m, "subset": s, "region": "ET", "Dice": v, "HD95": 1.0, "fold": 0}
            for (s, m), values in SCORES.items() for i, v in enumerate(values)]


def test_cells_by_hand():
    a, b = subset_floor(rows(), "model", ["base1", "base2"], ["A", "B"], ["ET"], margin=1.0)
    # A: better baseline base1 (mean 0.827); differences -2, -2, -4 points: mean -2.667, SD 1.155
    assert a["baseline"] == "base1" and a["n"] == 3
    assert a["diff"] == pytest.approx(-8 / 3)
    half = 4.302652729911275 * math.sqrt(4 / 3) / math.sqrt(3)  # t(0.975, 2) * SD / sqrt(n)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((-8 / 3 - half, -8 / 3 + half))
    assert a["model_mean"] == pytest.approx(80.0) and a["baseline_mean"] == pytest.approx(82.666, abs=1e-3)
    assert not a["holds"]
    # three negative differences: exact two-sided p = 2 / 2**3 = 0.25, so not significantly worse
    assert a["p"] == pytest.approx(0.25) and not a["worse"]
    assert b["baseline"] == "base1" and b["diff"] == pytest.approx(40.0) and b["holds"] and not b["worse"]
    assert b["ci_low"] == pytest.approx(40.0) and b["ci_high"] == pytest.approx(40.0)  # no spread
    assert a["p_holm"] == pytest.approx(0.5) and b["p_holm"] == pytest.approx(0.5)


def test_holm_within_each_region():
    """Two regions holding the same two cells: over all four cells p 0.25 becomes 1.0, per region 0.5."""
    both = rows() + [{**r, "region": "TC"} for r in rows()]
    per_region = subset_floor(both, "model", ["base1", "base2"], ["A", "B"], ["ET", "TC"], holm_per_region=True)
    overall = subset_floor(both, "model", ["base1", "base2"], ["A", "B"], ["ET", "TC"])
    assert [c["p_holm"] for c in per_region] == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert {c["holm_family"] for c in per_region} == {2} and {c["holm_family"] for c in overall} == {4}
    assert [c["p_holm"] for c in overall] == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_missing_model_is_refused():
    with pytest.raises(ValueError, match="base3"):
        subset_floor(rows(), "model", ["base3"], ["A"], ["ET"])


def test_command_writes_table_csv_and_picture(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    with open(bench / "per_case.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows()[0]))
        w.writeheader()
        w.writerows(rows())
    (bench / "summary.json").write_text(json.dumps(
        {"models": ["model", "base1", "base2"], "subsets": ["A", "B"], "regions": ["ET"]}))
    cells = write_subset_floor(bench, "model", ["base1", "base2"], tmp_path / "out")
    assert len(cells) == 2
    md = (tmp_path / "out" / "subset_floor.md").read_text()
    assert "| A | ET | 3 | 80.0 | base1 | 82.7 | -2.7" in md and "1 of 2 cells" in md
    assert (tmp_path / "out" / "subset_floor.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="per_case.csv"):
        write_subset_floor(tmp_path / "nothing", "model", ["base1"])
