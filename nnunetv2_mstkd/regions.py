"""Tumour regions of a dataset's labels: WT/TC/ET for BraTS-style labels, else one per label (METHOD §1).

Shared by the benchmark (which regions to score) and prediction reports (which outlines to draw),
with the one rule for how their scores are shown.
"""
from __future__ import annotations

#: BraTS evaluation regions as nnU-Net label sets: whole tumour, tumour core, enhancing tumour.
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}

#: Factor from a region score as stored to as shown: Dice is stored as a fraction and shown in per
#: cent (as the paper's tables), HD95 is stored and shown in mm. Every table, plot and report uses it.
DISPLAY_SCALE: dict[str, float] = {"Dice": 100.0, "HD95": 1.0, "LesionDice": 100.0, "LesionHD95": 1.0}


def evaluation_regions(dataset_json: dict) -> dict[str, tuple[int, ...]]:
    """Regions to score: WT/TC/ET for BraTS-style labels, else one per ``dataset.json`` label or region.

    BraTS-style means region labels equal to :data:`BRATS_REGIONS` (``whole tumor`` (1, 2, 3),
    ``tumor core`` (2, 3), ``enhancing tumor`` (3)), or the three plain labels 1, 2, 3 of
    nnU-Net's BraTS conversion, whose regions are then formed from them (METHOD §1).
    """
    labels = {name: tuple(sorted(v)) if isinstance(v, (list, tuple)) else (int(v),)
              for name, v in dataset_json["labels"].items() if name not in ("background", "ignore")}
    labels = {name: v for name, v in labels.items() if v != (0,)}
    brats = sorted(BRATS_REGIONS.values())
    if sorted(labels.values()) == brats or sorted(labels.values()) == [(1,), (2,), (3,)]:
        return dict(BRATS_REGIONS)
    return labels
