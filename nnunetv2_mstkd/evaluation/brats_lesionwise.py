"""BraTS's official lesion-wise Dice and HD95, from the optional ``brats-evaluation`` package.

Since 2023 BraTS ranks by lesion-wise metrics: each connected lesion of a region is matched to the
prediction and scored on its own, and missed and spurious lesions are penalised. The official
implementation is ``brats-evaluation`` (built on ``panoptica``), AGPL-3.0, so it is an optional extra
(``pip install "nnunetv2-mstkd[brats]"``), never imported unless asked for.

What comes from the package: its bundled configuration of the task (connected components per region,
maximum bipartite matching on any overlap), the per-region counts of matched (TP), spurious (FP) and
missed (FN) lesions, the mean Dice ``sq_dsc`` and mean HD95 ``sq_hd95`` over the matched lesions, and
its penalty of 373 mm (the diameter of the SRI-24 cube) for an HD95 that cannot be measured. They are
combined as BraTS 2023 defines the lesion-wise scores::

    LesionDice = sum of matched Dice / (TP + FP + FN) = sq_dsc * TP / (TP + FP + FN)
    LesionHD95 = (sum of matched HD95 + 373 * (FP + FN)) / (TP + FP + FN)

and a region that is empty in both is a perfect 1 and 0 mm. Labels: the package expects the GLI
convention (1 NETC, 2 SNFH, 3 ET, with WT = 1, 2, 3 and TC = 1, 3); the benchmark maps its own
regions (nnU-Net's BraTS conversion: WT (1, 2, 3), TC (2, 3), ET (3)) onto it, so BraTS 2021 and
2023+ datasets converted by ``mstkd_convert`` are scored alike.

The evaluator is given arrays with the spacing of each array axis. (Given a NIfTI file, panoptica 2.1.7
reads it through SimpleITK and pairs the (z, y, x) array with the (x, y, z) spacing, which changes HD95 on
anisotropic voxels; BraTS's 1 mm isotropic images are not affected.)
"""
from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

#: How to get the package.
EXTRA_HINT = ('--brats-metrics needs the optional package brats-evaluation (AGPL-3.0; it brings panoptica): '
              'pip install "nnunetv2-mstkd[brats]"  (or: pip install brats-evaluation)')

#: Bundled tasks whose regions are the GLI ones (WT = 1, 2, 3; TC = 1, 3; ET = 3), per the package's configs.
TASKS: tuple[str, ...] = ("gli", "mets", "MenPre", "GoAT")

#: The package's penalty for an HD95 that cannot be measured (a missed or spurious lesion), in mm.
HD95_PENALTY = 373.0

#: Our region name -> the package's group name.
GROUPS: dict[str, str] = {"WT": "wt", "TC": "tc", "ET": "et"}


@contextlib.contextmanager
def _quiet():
    """panoptica prints a citation banner and warns about the NSD threshold and overlapping label groups."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def check_brats_regions(regions: Mapping[str, Sequence[int]]) -> None:
    """Raise ValueError unless ``regions`` are WT, TC and ET (the only ones the GLI labels encode)."""
    if set(regions) != set(GROUPS):
        raise ValueError(f"BraTS lesion-wise metrics need the regions WT, TC and ET; this dataset's are "
                         f"{list(regions)}.")


def load_evaluator(task: str):
    """The package's evaluator of a bundled BraTS task.

    Raises:
        ImportError: Without the optional package (the message says how to install it).
        ValueError: For a task whose labels are not the GLI ones.
    """
    if task not in TASKS:
        raise ValueError(f"--brats-metrics {task!r} is not supported; use one of {list(TASKS)} (the bundled "
                         f"BraTS tasks whose regions are WT, TC and ET of the GLI labels).")
    try:
        import brats_evaluation
        from panoptica import Panoptica_Evaluator
    except ImportError as e:
        raise ImportError(EXTRA_HINT) from e
    with _quiet():
        return Panoptica_Evaluator.load_from_config(str(brats_evaluation.config_path(task)))


def to_gli_labels(labels: np.ndarray, regions: Mapping[str, Sequence[int]]) -> np.ndarray:
    """A label map in the GLI convention (1 NETC, 2 SNFH, 3 ET) from our WT/TC/ET regions.

    Raises:
        ValueError: If ``regions`` are not WT, TC and ET.
    """
    check_brats_regions(regions)
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[np.isin(labels, regions["WT"])] = 2
    out[np.isin(labels, regions["TC"])] = 1
    out[np.isin(labels, regions["ET"])] = 3
    return out


def combine(tp: int, fp: int, fn: int, sq_dsc: float, sq_hd95: float) -> dict[str, float]:
    """BraTS 2023's lesion-wise Dice and HD95 from the package's counts and matched-lesion means."""
    n = tp + fp + fn
    if n == 0:
        return {"LesionDice": 1.0, "LesionHD95": 0.0}
    matched_dice = tp * float(sq_dsc) if tp else 0.0
    matched_hd95 = tp * float(sq_hd95) if tp else 0.0
    return {"LesionDice": matched_dice / n, "LesionHD95": (matched_hd95 + HD95_PENALTY * (fp + fn)) / n}


def lesion_wise_metrics(evaluator, pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: Sequence[float],
                        regions: Mapping[str, Sequence[int]]) -> dict[str, dict[str, float]]:
    """``{region: {"LesionDice", "LesionHD95", "LesionTP", "LesionFP", "LesionFN"}}`` for WT, TC and ET.

    Args:
        evaluator: From :func:`load_evaluator`.
        pred_labels, ref_labels: Label maps of one grid (our labels).
        spacing: Voxel size in mm per array axis.
        regions: Our region definitions (WT, TC, ET).
    """
    pred, ref = to_gli_labels(pred_labels, regions), to_gli_labels(ref_labels, regions)
    with _quiet():
        results = evaluator.evaluate(pred, ref, voxelspacing=tuple(float(s) for s in spacing), verbose=False,
                                     skip_groups=["netc", "snfh", "rc"])
    out = {}
    for region, group in GROUPS.items():
        r = results[group]
        out[region] = {**combine(int(r.tp), int(r.fp), int(r.fn), r.sq_dsc, r.sq_hd95),
                       "LesionTP": int(r.tp), "LesionFP": int(r.fp), "LesionFN": int(r.fn)}
    return out
