"""Per-case segmentation metrics: Dice and HD95 per tumour region (METHOD §5).

Empty-mask conventions (the same for every model, so no model is flattered):

=====================  ======  ====================================
case                   Dice    HD95
=====================  ======  ====================================
both masks empty       1       0 mm
exactly one empty      0       the volume diagonal in mm
=====================  ======  ====================================

The volume diagonal is ``sqrt(sum((shape * spacing) ** 2))``: 373.13 mm for the
240 x 240 x 155 BraTS grid at 1 mm. It is the worst distance the grid allows, so
a missed or hallucinated region costs the most it can, instead of the 0 mm that
some published code returns.

HD95 is the symmetric variant of medpy's ``hd95`` (Maier et al., MedPy), the
implementation most BraTS missing-modality papers report with: the 95th
percentile (linear interpolation) of the *union* of both directed surface-distance
sets. We keep that definition so our numbers sit beside the published ones;
the alternative (the larger of the two directed 95th percentiles, as in MONAI)
is never smaller and differs when the two surfaces have very different sizes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn, region_or_label_to_mask
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from nnunetv2_mstkd.regions import BRATS_REGIONS

#: Every metric a benchmark row can carry, each with whether a higher value is better: the voxel-wise
#: Dice and HD95 this module computes (every row has them) and BraTS's lesion-wise Dice and HD95
#: (:mod:`~nnunetv2_mstkd.evaluation.brats_lesionwise`, with ``--brats-metrics``).
HIGHER_IS_BETTER: dict[str, bool] = {"Dice": True, "HD95": False, "LesionDice": True, "LesionHD95": False}

#: The metrics every row carries.
CORE_METRICS: tuple[str, ...] = ("Dice", "HD95")

#: How the tables name a metric (with its unit as shown).
METRIC_LABELS: dict[str, str] = {"Dice": "Dice (%)", "HD95": "HD95 (mm)", "LesionDice": "Lesion-wise Dice (%)",
                                 "LesionHD95": "Lesion-wise HD95 (mm)"}


def metrics_of(rows) -> list[str]:
    """The metrics of a set of rows, in :data:`HIGHER_IS_BETTER` order: the core ones and every optional
    one that all rows carry with a value."""
    rows = list(rows)
    return [m for m in HIGHER_IS_BETTER if m in CORE_METRICS or
            (rows and all(r.get(m, "") not in ("", None) for r in rows))]


def volume_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the diagonal of a grid of ``shape`` voxels with ``spacing`` mm per axis."""
    return float(np.sqrt(np.sum((np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)) ** 2)))


def _check_masks(pred: np.ndarray, ref: np.ndarray) -> None:
    for name, m in (("pred", pred), ("ref", ref)):
        if not isinstance(m, np.ndarray) or m.dtype != bool:
            raise TypeError(f"{name} must be a boolean numpy array, got {type(m).__name__} of dtype "
                            f"{getattr(m, 'dtype', None)}; binarise label maps first (e.g. labels == 3).")
    if pred.shape != ref.shape:
        raise ValueError(f"pred has shape {pred.shape} but ref has shape {ref.shape}; they must match.")


def _check_spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    sp = np.asarray(spacing, dtype=float).ravel()
    if sp.size != ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {ndim} positive numbers (mm per axis of the masks), got {list(spacing)}.")
    return sp


def _union_box(a: np.ndarray, b: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Bounding box of ``a | b`` grown by ``margin`` voxels (clipped), or None when both are empty."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        hit = np.flatnonzero(union.any(axis=tuple(i for i in range(union.ndim) if i != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(hit[0] - margin, 0), min(hit[-1] + margin + 1, union.shape[axis])))
    return tuple(box)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient ``2|P ∩ R| / (|P| + |R|)`` of two boolean masks.

    Args:
        pred: Predicted mask, boolean, any dimensionality.
        ref: Reference mask, same shape.

    Returns:
        Dice in [0, 1]; 1 when both masks are empty.

    Raises:
        TypeError: If a mask is not a boolean array.
        ValueError: If the shapes differ.
    """
    _check_masks(pred, ref)
    box = _union_box(pred, ref, margin=0)
    if box is None:
        return 1.0
    tp, fp, fn, _ = compute_tp_fp_fn_tn(ref[box], pred[box])
    return float(2 * tp / (2 * tp + fp + fn))


def _surface(mask: np.ndarray) -> np.ndarray:
    # Face-connected erosion: a voxel is on the surface if any of its 2*ndim face neighbours is
    # background. Voxels on the array border count as surface (erosion pads with background).
    return mask & ~binary_erosion(mask, structure=generate_binary_structure(mask.ndim, 1))


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance between two boolean masks, in mm.

    With surfaces ``S_P`` and ``S_R`` (mask voxels with a face neighbour outside the
    mask) and ``d(x, S) = min_{y in S} ||(x - y) * spacing||``::

        HD95 = percentile_95({d(x, S_R) : x in S_P} ∪ {d(y, S_P) : y in S_R})

    which equals ``medpy.metric.binary.hd95(pred, ref, spacing)``. The masks are
    cropped to the bounding box of both (plus one voxel) before the distance
    transforms, so the cost follows the tumour's size, not the image's.

    Args:
        pred: Predicted mask, boolean, 2D or 3D (any dimensionality works).
        ref: Reference mask, same shape.
        spacing: Voxel size in mm per axis, in array axis order; anisotropic allowed.

    Returns:
        HD95 in mm; 0 when both masks are empty, the volume diagonal when exactly one is.

    Raises:
        TypeError: If a mask is not a boolean array.
        ValueError: If the shapes differ or ``spacing`` is not one positive number per axis.
    """
    _check_masks(pred, ref)
    sp = _check_spacing(spacing, pred.ndim)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0
    if has_pred != has_ref:
        return volume_diagonal(pred.shape, sp)
    # One voxel of margin keeps erosion at a crop edge identical to erosion in the full array;
    # every surface voxel lies inside the box, so the nearest-surface distances are unchanged.
    box = _union_box(pred, ref, margin=1)
    surf_p, surf_r = _surface(pred[box]), _surface(ref[box])
    d_p_to_r = distance_transform_edt(~surf_r, sampling=sp)[surf_p]
    d_r_to_p = distance_transform_edt(~surf_p, sampling=sp)[surf_r]
    return float(np.percentile(np.concatenate([d_p_to_r, d_r_to_p]), 95))


def region_metrics(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float],
                   regions: Mapping[str, int | tuple[int, ...]] | None = None) -> dict[str, dict[str, float]]:
    """Dice and HD95 of every region of a predicted label map against the reference.

    Args:
        pred_labels: Integer label map of the prediction (nnU-Net labels, e.g. 1 edema,
            2 necrosis, 3 enhancing).
        ref_labels: Reference label map of the same shape.
        spacing: Voxel size in mm per array axis.
        regions: Region name -> label or tuple of labels forming it. Defaults to
            :data:`~nnunetv2_mstkd.regions.BRATS_REGIONS` (WT, TC, ET).

    Returns:
        ``{region: {"Dice": float, "HD95": float}}`` in the order of ``regions``.

    Raises:
        ValueError: If the shapes differ or the spacing does not fit.
    """
    regions = BRATS_REGIONS if regions is None else regions
    pred_labels, ref_labels = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred_labels.shape != ref_labels.shape:
        raise ValueError(f"Prediction has shape {pred_labels.shape} but reference has shape {ref_labels.shape}; "
                         f"resample the prediction to the reference grid first.")
    _check_spacing(spacing, ref_labels.ndim)
    out = {}
    for name, labels in regions.items():
        p = region_or_label_to_mask(pred_labels, labels)
        r = region_or_label_to_mask(ref_labels, labels)
        out[name] = {"Dice": dice(p, r), "HD95": hd95(p, r, spacing)}
    return out
