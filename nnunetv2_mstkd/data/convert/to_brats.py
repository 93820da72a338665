"""Predictions back to the challenge's labels, for submission or the official evaluation.

nnU-Net predicts the labels 1 edema, 2 necrosis, 3 enhancing (values 0-3). The
challenges number them differently:

* ``2021`` (BraTS 2018-2021, FeTS): 1 -> 2, 2 -> 1, 3 -> 4;
* ``gli`` (BraTS 2023/2024 GLI): 1 -> 2, 2 -> 1, 3 -> 3.

File names are kept (they are the challenge's case identifiers) and so is the geometry.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.data.convert.parallel import map_with_progress
from nnunetv2_mstkd.data.convert.schemes import CONVENTIONS


class UnconvertedFilesError(ValueError):
    """Some prediction files could not be converted (the others were); the message names each one."""


def to_brats_labels(seg: np.ndarray, convention: str, name: str = "prediction") -> np.ndarray:
    """Map an nnU-Net label map (values 0-3) to the challenge labels of ``convention``.

    Args:
        seg: Integer label map of any shape.
        convention: ``"2021"`` or ``"gli"``.
        name: What to call ``seg`` in error messages (the file name).

    Returns:
        A ``uint8`` array of the same shape.

    Raises:
        ValueError: For an unknown convention, or values outside 0-3 (naming them and ``name``).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown label convention {convention!r}; use one of {', '.join(CONVENTIONS)}.")
    mapping = CONVENTIONS[convention]
    bad = [v.item() for v in np.unique(seg) if v not in mapping]
    if bad:
        raise ValueError(f"{name} contains values {bad}; expected nnU-Net BraTS labels {sorted(mapping)}. "
                         f"Pass the folder of nnU-Net predictions, not of already converted files.")
    lut = np.array([mapping[k] for k in range(len(mapping))], dtype=np.uint8)
    return lut[seg.astype(np.intp)]


def convert_prediction_file(src: str, dst: str, convention: str) -> None:
    """Relabel one prediction file ``src`` into ``dst`` (written atomically), keeping its geometry."""
    image = sitk.ReadImage(src)
    out = sitk.GetImageFromArray(to_brats_labels(sitk.GetArrayViewFromImage(image), convention, src))
    out.CopyInformation(image)
    with atomic_path(dst) as tmp:
        sitk.WriteImage(out, tmp, useCompression=True)


def _convert_or_message(src: str, dst: str, convention: str) -> str:
    try:
        convert_prediction_file(src, dst, convention)
    except Exception as e:  # one bad file must not stop the others
        return str(e) if isinstance(e, ValueError) else f"{src}: {type(e).__name__}: {e}"
    return ""


def convert_predictions_to_brats(pred_dir: str, out_dir: str, convention: str, num_processes: int = 1) -> list[str]:
    """Relabel every ``.nii.gz``/``.nii`` prediction in ``pred_dir`` into ``out_dir``.

    Other files (nnU-Net's ``plans.json``, ``dataset.json``, ...) are ignored. Good
    files are converted even when others fail.

    Args:
        pred_dir: Output folder of ``mstkd_predict`` / ``nnUNetv2_predict``.
        out_dir: Where to write; must differ from ``pred_dir`` so that a re-run never relabels twice.
        convention: ``"2021"`` or ``"gli"``.
        num_processes: Parallel workers.

    Returns:
        The written files.

    Raises:
        ValueError: For an unknown convention, ``out_dir == pred_dir``, no prediction
            files.
        UnconvertedFilesError: After converting the rest, naming every file that failed
            (e.g. values outside 0-3).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown label convention {convention!r}; use one of {', '.join(CONVENTIONS)}.")
    if os.path.realpath(pred_dir) == os.path.realpath(out_dir):
        raise ValueError(f"Output folder {out_dir!r} is the prediction folder; pick another one so that the "
                         f"nnU-Net predictions stay untouched.")
    if not os.path.isdir(pred_dir):
        raise ValueError(f"Prediction folder {pred_dir!r} does not exist.")
    names = sorted(n for n in os.listdir(pred_dir)
                   if not n.startswith(".") and (n.endswith(".nii.gz") or n.endswith(".nii")))
    if not names:
        raise ValueError(f"No .nii.gz prediction files in {pred_dir!r}.")
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(os.path.join(pred_dir, n), os.path.join(out_dir, n), convention) for n in names]
    messages = [m for m in map_with_progress(_convert_or_message, jobs, num_processes, desc="to-brats") if m]
    if messages:
        raise UnconvertedFilesError(f"{len(messages)} of {len(names)} file(s) could not be converted:\n"
                                    + "\n".join(messages))
    return [dst for _, dst, _ in jobs]
