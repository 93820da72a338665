"""Spread across folds: each fold's subset average, then mean ± SD over folds, checked by hand."""
import math

import pytest

from nnunetv2_mstkd.evaluation.folds import fold_markdown, fold_summary


def _row(fold, case, model, subset, dice, hd):
    return {"fold": fold, "case": case, "model": model, "subset": subset, "region": "WT", "Dice": dice, "HD95": hd}


def test_fold_means_and_sd_by_hand():
    # Fold 0: T2 mean (0.6 + 0.8)/2 = 0.7, All 0.9 -> avg 0.8. Fold 1: T2 0.4, All 0.8 -> avg 0.6.
    # Across folds: mean 0.7, sample SD sqrt(((0.1)² + (0.1)²)/1) = 0.1414.
    rows = [_row(0, "a", "M", "T2", 0.6, 4), _row(0, "b", "M", "T2", 0.8, 2), _row(0, "a", "M", "All", 0.9, 1),
            _row(0, "b", "M", "All", 0.9, 1), _row(1, "c", "M", "T2", 0.4, 8), _row(1, "c", "M", "All", 0.8, 2)]
    s = fold_summary(rows, ["T2", "All"])
    dice = s["results"]["M"]["WT"]["Dice"]
    assert s["folds"] == ["0", "1"]
    assert dice["per_fold"] == pytest.approx({"0": 0.8, "1": 0.6})
    assert dice["mean"] == pytest.approx(0.7) and dice["sd"] == pytest.approx(math.sqrt(0.02))
    hd = s["results"]["M"]["WT"]["HD95"]
    assert hd["per_fold"] == pytest.approx({"0": 2.0, "1": 5.0}) and hd["n_folds"] == 2
    md = fold_markdown(s, ["M"], ["WT"])
    assert "| M | 70.0 ± 14.1 | 3.5 ± 2.1 | 2 |" in md
    assert "| M | 1 | 60.0 | 5.0 |" in md


def test_a_fold_missing_a_subset_is_left_out_and_one_fold_has_no_sd():
    rows = [_row(0, "a", "M", "T2", 0.6, 4), _row(0, "a", "M", "All", 1.0, 0), _row(1, "b", "M", "T2", 0.4, 8)]
    dice = fold_summary(rows, ["T2", "All"])["results"]["M"]["WT"]["Dice"]
    assert dice["per_fold"] == pytest.approx({"0": 0.8}) and dice["n_folds"] == 1 and math.isnan(dice["sd"])
