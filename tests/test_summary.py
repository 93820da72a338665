"""Benchmark outputs: per-case CSV, summary, paper-layout tables, heatmap, Wilcoxon tests."""
import json
import math

import pytest

from nnunetv2_mstkd.evaluation.stats import default_reference_model, holm
from nnunetv2_mstkd.evaluation.summary import (
    markdown_table,
    paper_markdown_table,
    paper_reference_rows,
    plot_dice_heatmap,
    read_per_case_csv,
    summarize,
    wilcoxon_markdown,
    wilcoxon_tests,
    write_per_case_csv,
    write_summary_json,
)
from nnunetv2_mstkd.modalities import BRATS_CHANNELS, paper_subsets, subset_label

PAPER_ORDER = [subset_label(s, BRATS_CHANNELS) for s in paper_subsets(BRATS_CHANNELS)]


def _row(case, model, subset, region, dice, hd):
    return {"case": case, "model": model, "subset": subset, "region": region, "Dice": dice, "HD95": hd}


@pytest.fixture
def rows():
    # Model A: T2 Dice 0.8 / 0.6, All 0.9 / 0.7. Model B: T2 only, Dice 0.5 / 0.5.
    return [
        _row("c1", "A", "T2", "WT", 0.8, 4.0), _row("c2", "A", "T2", "WT", 0.6, 6.0),
        _row("c1", "A", "All", "WT", 0.9, 2.0), _row("c2", "A", "All", "WT", 0.7, 4.0),
        _row("c1", "B", "T2", "WT", 0.5, 9.0), _row("c2", "B", "T2", "WT", 0.5, 9.0),
    ]


def test_csv_round_trip_keeps_values_and_extra_columns(tmp_path, rows):
    rows[0]["fold"] = "0"
    write_per_case_csv(rows, tmp_path / "per_case.csv")
    back = read_per_case_csv(tmp_path / "per_case.csv")
    assert [r["Dice"] for r in back] == [r["Dice"] for r in rows]
    assert [r["HD95"] for r in back] == [r["HD95"] for r in rows]
    assert back[0]["fold"] == "0" and back[1]["fold"] == ""
    assert (tmp_path / "per_case.csv").read_text().splitlines()[0] == "case,model,subset,region,Dice,HD95,fold"


def test_csv_reader_names_the_bad_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case,model,subset,region,Dice\nc1,A,T2,WT,0.5\n")
    with pytest.raises(ValueError, match="HD95"):
        read_per_case_csv(bad)
    bad.write_text("case,model,subset,region,Dice,HD95\nc1,A,T2,WT,0.5,1\nc2,A,T2,WT,oops,1\n")
    with pytest.raises(ValueError, match="line 3"):
        read_per_case_csv(bad)


def test_summary_means_stds_and_avg_by_hand(rows):
    s = summarize(rows, ["T2", "All"])
    a = s["results"]["A"]
    assert a["T2"]["WT"]["Dice"]["mean"] == pytest.approx(0.7)
    assert a["T2"]["WT"]["Dice"]["std"] == pytest.approx(math.sqrt(0.02))  # sample std of 0.8, 0.6
    assert a["All"]["WT"]["HD95"]["mean"] == pytest.approx(3.0)
    assert a["Avg"]["WT"]["Dice"] == pytest.approx({"mean": 0.75, "std": math.sqrt(0.02), "n": 2})
    assert a["Avg"]["WT"]["HD95"]["mean"] == pytest.approx(4.0)
    # B lacks "All": its Avg over the 2 subsets is undefined, not the T2 value.
    assert math.isnan(s["results"]["B"]["Avg"]["WT"]["Dice"]["mean"])
    assert s["results"]["B"]["T2"]["WT"]["Dice"] == pytest.approx({"mean": 0.5, "std": 0.0, "n": 2})
    assert s["n_cases"] == {"A": 2, "B": 2}
    assert s["models"] == ["A", "B"] and s["regions"] == ["WT"]


def test_avg_is_the_mean_of_subset_means_when_cases_are_unbalanced():
    rows = [_row("c1", "A", "T2", "WT", 0.2, 1.0), _row("c2", "A", "T2", "WT", 0.4, 1.0),
            _row("c1", "A", "All", "WT", 1.0, 1.0)]
    avg = summarize(rows, ["T2", "All"])["results"]["A"]["Avg"]["WT"]["Dice"]
    assert avg["mean"] == pytest.approx((0.3 + 1.0) / 2)
    assert avg["n"] == 1 and math.isnan(avg["std"])  # only c1 has every subset


@pytest.mark.parametrize("bad, match", [
    (_row("c1", "A", "FLAIR", "WT", 0.5, 1.0), "subset_label"),
    (_row("c1", "A", "T2", "WT", 0.8, 4.0), "twice"),
    (_row("c3", "A", "T2", "WT", float("nan"), 4.0), "not finite"),
    ({"case": "c3", "model": "A", "subset": "T2", "region": "WT", "Dice": 0.5}, "HD95"),
])
def test_summarize_refuses_bad_rows(rows, bad, match):
    with pytest.raises(ValueError, match=match):
        summarize(rows + [bad], ["T2", "All"])


def test_markdown_table_layout_and_bolding(rows):
    rows = rows + [_row("c1", "C", "T2", "WT", 0.7, 9.0), _row("c2", "C", "T2", "WT", 0.7, 9.0)]
    md = markdown_table(summarize(rows, PAPER_ORDER), PAPER_ORDER, ["A", "B", "C"])
    lines = md.strip().splitlines()
    assert lines[0].split("|")[4:-1] == [f" {c} " for c in PAPER_ORDER + ["Avg"]]
    assert len(PAPER_ORDER) == 15 and PAPER_ORDER[0] == "T2" and PAPER_ORDER[-1] == "All"
    assert {line.count("|") for line in lines} == {3 + 16 + 1}  # every row has every cell: valid GFM
    dice_rows = {line.split("|")[3].strip(): line.split("|")[4:-1] for line in lines[2:5]}
    # T2 Dice: A 70.0 and C 70.0 tie for best, B 50.0; "All" has only A, so nothing is bold there.
    assert [dice_rows[m][0].strip() for m in "ABC"] == ["**70.0**", "50.0", "**70.0**"]
    assert [dice_rows[m][-2].strip() for m in "ABC"] == ["80.0", "–", "–"]
    assert lines[2].startswith("| Dice (%) | WT | A |") and lines[3].startswith("| | | B |")
    hd_rows = {line.split("|")[3].strip(): line.split("|")[4:-1] for line in lines[5:8]}
    assert lines[5].startswith("| HD95 (mm) | WT |")
    assert [hd_rows[m][0].strip() for m in "ABC"] == ["**5.0**", "9.0", "9.0"]  # lower is better


def test_markdown_table_refuses_unknown_models(rows):
    with pytest.raises(ValueError, match="not in the summary"):
        markdown_table(summarize(rows, ["T2", "All"]), ["T2", "All"], ["A", "Z"])


def test_summary_json_round_trip_renders_the_same_table(tmp_path, rows):
    summary = summarize(rows, ["T2", "All"])
    write_summary_json(summary, tmp_path / "summary.json")
    loaded = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: NaN became null
    assert loaded["results"]["B"]["Avg"]["WT"]["Dice"]["mean"] is None
    assert markdown_table(loaded, ["T2", "All"]) == markdown_table(summary, ["T2", "All"])


def test_heatmap_is_a_png(tmp_path, rows):
    out = plot_dice_heatmap(summarize(rows, PAPER_ORDER), PAPER_ORDER, ["A", "B"], tmp_path / "heat.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ValueError, match="not in the summary"):
        plot_dice_heatmap(summarize(rows, PAPER_ORDER), PAPER_ORDER, ["Z"], tmp_path / "x.png")


def _paired(reference_dice, other_dice, models=("nnUNetTrainerMSTKD", "nnUNetTrainer")):
    out = []
    for i, (a, b) in enumerate(zip(reference_dice, other_dice)):
        out.append(_row(f"c{i}", models[0], "T2", "WT", a, 10 - 10 * a))
        out.append(_row(f"c{i}", models[1], "T2", "WT", b, 10 - 10 * b))
    return out


def test_wilcoxon_model_better_on_every_pair():
    ref = [0.5 + 0.04 * i for i in range(10)]
    res = wilcoxon_tests(_paired(ref, [v - 0.01 * (i + 1) for i, v in enumerate(ref)]))
    dice_r, hd_r = res
    # 10 positive differences with distinct ranks: W = 0, exact two-sided p = 2 / 2**10.
    assert dice_r["metric"] == "Dice" and dice_r["n"] == 10 and dice_r["statistic"] == 0.0
    assert dice_r["p"] == pytest.approx(2 / 1024)
    assert dice_r["median_diff"] == pytest.approx(0.055) and dice_r["mean_diff"] == pytest.approx(0.055)
    assert dice_r["better"] == "nnUNetTrainerMSTKD"
    # HD95 differences are all negative: the reference is better because lower is better.
    assert hd_r["mean_diff"] == pytest.approx(-0.55) and hd_r["better"] == "nnUNetTrainerMSTKD"
    # Holm works within each metric and region: one comparison each here, so nothing to adjust.
    assert dice_r["p_holm"] == pytest.approx(2 / 1024) and hd_r["p_holm"] == pytest.approx(2 / 1024)
    md = wilcoxon_markdown(res)
    assert "| nnUNetTrainerMSTKD | nnUNetTrainer | Dice | WT | 10 | +5.50 | +5.50 | 0 | 0.002 | 0.002 |" in md
    assert "over cases" in md and "2 families" in md


def test_wilcoxon_unit_is_the_case_not_the_subset():
    # 3 cases x 2 subsets x 2 folds. Reference minus other, per case, is the mean over its 4 (fold, subset)
    # pairs: c0: (+.1 +.3 +.1 +.3)/4 = .2, c1: .1, c2: −.05. Three cases, one below zero: W = 1 (rank of |−.05|),
    # exact two-sided p = 2 · P(W <= 1) = 2 · 2/8 = 0.5.
    rows = []
    for fold in (0, 1):
        for case, (d_t2, d_all) in {"c0": (0.1, 0.3), "c1": (0.1, 0.1), "c2": (-0.05, -0.05)}.items():
            for subset, d in (("T2", d_t2), ("All", d_all)):
                rows.append({**_row(case, "nnUNetTrainerMSTKD", subset, "WT", 0.5 + d, 1.0), "fold": fold})
                rows.append({**_row(case, "nnUNetTrainer", subset, "WT", 0.5, 1.0), "fold": fold})
    dice = wilcoxon_tests(rows, metrics=("Dice",))[0]
    assert dice["n"] == 3 and dice["n_nonzero"] == 3
    assert dice["mean_diff"] == pytest.approx((0.2 + 0.1 - 0.05) / 3)
    assert dice["median_diff"] == pytest.approx(0.1)
    assert dice["statistic"] == 1.0 and dice["p"] == pytest.approx(0.5)


def test_holm_runs_within_each_metric_and_region():
    ref = [0.5 + 0.04 * i for i in range(10)]
    rows = _paired(ref, [v - 0.01 * (i + 1) for i, v in enumerate(ref)])
    rows += [{**r, "model": "nnUNetTrainerModalityDropout"} for r in rows if r["model"] == "nnUNetTrainer"]
    res = wilcoxon_tests(rows)
    dice = [r for r in res if r["metric"] == "Dice"]
    # two comparisons in the Dice/WT family, both p = 2/1024: Holm doubles the smaller, keeps the maximum
    assert [r["p_holm"] for r in dice] == pytest.approx([4 / 1024, 4 / 1024])


def test_wilcoxon_degenerate_cases():
    same = wilcoxon_tests(_paired([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]))[0]
    assert (same["p"], same["statistic"], same["better"]) == (1.0, 0.0, "tie")
    assert "zero" in same["note"]
    few = wilcoxon_tests(_paired([0.9, 0.8, 0.7], [0.5, 0.6, 0.65]))[0]
    assert few["p"] == pytest.approx(0.25) and "cannot fall below 0.05" in few["note"]
    rows = _paired([0.5], [0.4])
    rows[1]["subset"] = "All"  # no (case, subset) in common
    none = wilcoxon_tests(rows)[0]
    assert none["n"] == 0 and math.isnan(none["p"]) and math.isnan(none["p_holm"])
    assert "| – | – |" in wilcoxon_markdown([none])


def test_default_reference_skips_ablations_and_honours_an_explicit_name():
    models = ["nnUNetTrainer", "nnUNetTrainerMSTKDTeacher_20ep", "nnUNetTrainerMSTKD_noKD_20ep",
              "nnUNetTrainerMSTKD_20ep25it"]
    assert default_reference_model(models) == "nnUNetTrainerMSTKD_20ep25it"  # the teacher is not a student
    with pytest.raises(ValueError, match="pass reference_model"):
        default_reference_model(["nnUNetTrainer", "nnUNetTrainerMSTKD_noGSME"])
    rows = _paired([0.9, 0.8], [0.5, 0.6], models=("nnUNetTrainerMSTKD_noDMLD", "nnUNetTrainer"))
    res = wilcoxon_tests(rows, reference_model="nnUNetTrainer")
    assert res[0]["reference"] == "nnUNetTrainer" and res[0]["model"] == "nnUNetTrainerMSTKD_noDMLD"
    with pytest.raises(ValueError, match="has no rows"):
        wilcoxon_tests(rows, reference_model="nnUNetTrainerMSTKD")


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04 with m = 3: 0.03, max(0.03, 0.06), max(0.06, 0.04).
    adjusted = holm([0.01, 0.04, 0.03, float("nan")])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])


def test_paper_reference_rows_use_our_labels_and_units():
    rows = paper_reference_rows(dataset="BraTS2024")
    cell = {(r["model"], r["subset"], r["region"], r["metric"]): r["value"] for r in rows}
    assert cell[("MST-KDNet", "Avg", "WT", "Dice")] == pytest.approx(0.818)
    assert cell[("MST-KDNet", "FL+T1Gd", "WT", "Dice")] == pytest.approx(0.864)
    assert cell[("MST-KDNet", "Avg", "TC", "HD95")] == pytest.approx(7.2)
    assert {r["subset"] for r in rows} == set(PAPER_ORDER) | {"Avg"}
    assert len(rows) == 7 * 2 * 3 * 16
    assert cell[("SMU-Net", "All", "ET", "Dice")] == pytest.approx(0.708)
    fets = {(r["model"], r["subset"], r["region"], r["metric"]): r["value"]
            for r in paper_reference_rows(dataset="FeTS2024")}
    assert fets[("MST-KDNet", "Avg", "WT", "Dice")] == pytest.approx(0.884)
    with pytest.raises(ValueError, match="BraTS2024"):
        paper_reference_rows(dataset="BraTS2021")


def test_paper_markdown_table_bolds_the_papers_best():
    md = paper_markdown_table(PAPER_ORDER)
    assert "differ" in md.splitlines()[0]
    mst = [line for line in md.splitlines() if "| MST-KDNet |" in line]
    assert mst[0].endswith("| **86.8** | **81.8** |")  # Dice WT: All, Avg
    assert mst[3].endswith("| **6.6** |")  # HD95 WT Avg: 6.6 beats SMU-Net's 7.4
