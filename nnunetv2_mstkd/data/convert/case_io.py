"""Checking and writing one case: the unit of work of ``mstkd_convert``.

:func:`convert_case` decides where a case goes, skips it when a previous run wrote it
completely, checks it (one voxel grid for all files, finite image values, known
label values) and writes it. Images already stored as ``.nii.gz`` are copied byte
for byte, so voxel data, data type and header stay exactly as published; the
segmentation is relabelled with SimpleITK, keeping its geometry.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.data.convert.download_cases import DownloadCase
from nnunetv2_mstkd.data.convert.schemes import Scheme, get_scheme
from nnunetv2_mstkd.data.nonfinite import count_nonfinite

#: Tolerances for comparing geometry between the files of one case (mm, direction cosines).
MM_TOLERANCE = 1e-3
DIRECTION_TOLERANCE = 1e-4


class CaseError(ValueError):
    """A case cannot be converted; the message names the case, the file and the value at fault."""


@dataclass
class CaseResult:
    """What happened to one case.

    Attributes:
        case_id: The case identifier.
        status: ``"converted"`` (written now), ``"skipped"`` (a previous run wrote it),
            ``"left_out"`` (incomplete, not kept) or ``"error"``.
        destination: ``"imagesTr"`` or ``"imagesTs"``, or None when nothing is written.
        missing: Names of the absent sequences (``"T1ce"``, ...).
        message: The error message for ``status == "error"``.
        background_voxels: Voxels of ``Scheme.background_labels`` (e.g. the resection
            cavity) set to background in this run.
    """

    case_id: str
    status: str
    destination: str | None = None
    missing: list[str] = field(default_factory=list)
    message: str = ""
    background_voxels: int = 0


def output_paths(case: DownloadCase, scheme: Scheme, dataset_dir: str, keep_incomplete: bool) -> dict[str, str]:
    """Source file -> destination file for ``case``, or ``{}`` when the case is left out.

    A complete case with a segmentation goes to ``imagesTr``/``labelsTr``; a complete case
    without one to ``imagesTs``. An incomplete case goes to ``imagesTs`` only with
    ``keep_incomplete``, each image under its own channel index (absent channels have
    no file), and its segmentation, if any, to ``labelsTs`` for evaluation.
    """
    complete = not case.missing_channels(len(scheme.channels))
    if not case.images or not (complete or keep_incomplete):
        return {}
    train = complete and case.seg is not None
    images_dir = os.path.join(dataset_dir, "imagesTr" if train else "imagesTs")
    paths = {src: os.path.join(images_dir, f"{case.case_id}_{c:04d}.nii.gz") for c, src in sorted(case.images.items())}
    if case.seg is not None:
        paths[case.seg] = os.path.join(dataset_dir, "labelsTr" if train else "labelsTs", f"{case.case_id}.nii.gz")
    return paths


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def check_geometry(case_id: str, files: list[str]) -> None:
    """Raise :class:`CaseError` unless all ``files`` share size, spacing, origin and direction.

    Only the headers are read.
    """
    reference = None
    for path in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
            raise CaseError(f"{case_id}: {path} is not a 3D single-component image (dimension "
                            f"{reader.GetDimension()}, {reader.GetNumberOfComponents()} components).")
        info = {"shape": reader.GetSize(), "spacing": reader.GetSpacing(), "origin": reader.GetOrigin(),
                "orientation (direction)": reader.GetDirection()}
        if reference is None:
            reference = (path, info)
            continue
        ref_path, ref_info = reference
        for key, value in info.items():
            if key == "shape":
                same = tuple(value) == tuple(ref_info[key])
            else:
                tol = DIRECTION_TOLERANCE if key.startswith("orientation") else MM_TOLERANCE
                same = np.allclose(value, ref_info[key], rtol=0, atol=tol)
            if not same:
                raise CaseError(f"{case_id}: {key} of {path} {_fmt(value)} differs from {ref_path} "
                                f"{_fmt(ref_info[key])}. All files of a case must share one voxel "
                                f"grid; resample the odd file onto the others or remove the case.")


def check_finite(case_id: str, path: str) -> None:
    """Raise :class:`CaseError` if the file at ``path`` stores NaN or Inf voxels (:func:`count_nonfinite`)."""
    n_nan, n_inf = count_nonfinite(path)
    if n_nan or n_inf:
        raise CaseError(f"{case_id}: {path} contains {n_nan} NaN and {n_inf} Inf voxels. Replace them (e.g. "
                        f"with 0) before converting: nnU-Net cannot normalise such an image.")


def relabel(case_id: str, path: str, seg: np.ndarray, label_map: dict[int, int]) -> np.ndarray:
    """Map challenge labels to nnU-Net labels with ``label_map``, refusing any other value.

    Returns:
        A ``uint8`` array of the same shape.

    Raises:
        CaseError: Naming the case, the file and the unexpected values.
    """
    values = np.unique(seg)
    bad = [v.item() for v in values if v not in label_map]
    if bad:
        raise CaseError(f"{case_id}: segmentation {path} contains label values {bad} that this dataset does not "
                        f"define (expected {sorted(label_map)}). Check that the right dataset scheme was chosen, "
                        f"or fix the file.")
    lut = np.zeros(max(label_map) + 1, dtype=np.uint8)
    for source, target in label_map.items():
        lut[source] = target
    return lut[seg.astype(np.intp)]


def read_relabelled_seg(case_id: str, path: str, scheme: Scheme) -> tuple[sitk.Image, int]:
    """Read a segmentation and relabel it to nnU-Net's labels, keeping its geometry.

    Returns:
        The relabelled image and the number of voxels of ``scheme.background_labels``
        that became background.
    """
    image = sitk.ReadImage(path)
    seg = sitk.GetArrayViewFromImage(image)
    background = sum(int((seg == label).sum()) for label in scheme.background_labels)
    out = sitk.GetImageFromArray(relabel(case_id, path, seg, scheme.label_map))
    out.CopyInformation(image)
    return out, background


def _write_case(paths: dict[str, str], seg_path: str | None, seg: sitk.Image | None) -> None:
    """Write every file of a case, or none: files already written are removed if one fails."""
    written = []
    try:
        for src, dst in paths.items():
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with atomic_path(dst) as tmp:
                if src == seg_path:
                    sitk.WriteImage(seg, tmp, useCompression=True)
                elif src.endswith(".nii.gz"):
                    shutil.copyfile(src, tmp)
                else:
                    sitk.WriteImage(sitk.ReadImage(src), tmp, useCompression=True)
            written.append(dst)
    except BaseException:
        # half a case in imagesTr would break nnU-Net's dataset checks; a re-run converts it again
        for dst in written:
            os.remove(dst)
        raise


def convert_case(case: DownloadCase, scheme: str | Scheme, dataset_dir: str,
                 keep_incomplete: bool = False) -> CaseResult:
    """Check and write one case into the nnU-Net raw dataset ``dataset_dir``.

    Never raises for a problem of the case itself: such problems come back as a result
    with ``status == "error"`` so that the other cases go on.

    Args:
        case: The case's source files.
        scheme: Its dataset scheme (or scheme key).
        dataset_dir: ``$nnUNet_raw/DatasetXXX_NAME``.
        keep_incomplete: Write cases lacking a sequence to ``imagesTs`` instead of leaving them out.

    Returns:
        A :class:`CaseResult`.
    """
    scheme = get_scheme(scheme)
    missing = [scheme.channel_name(c) for c in case.missing_channels(len(scheme.channels))]
    result = CaseResult(case.case_id, "left_out", missing=missing)
    try:
        if case.duplicates:
            raise CaseError(f"{case.case_id}: " + "; ".join(case.duplicates) + ". Keep one file per sequence.")
        if not case.images:
            raise CaseError(f"{case.case_id}: no image file found, only {case.seg}.")
        paths = output_paths(case, scheme, dataset_dir, keep_incomplete)
        if not paths:
            return result
        result.destination = os.path.basename(os.path.dirname(next(iter(paths.values()))))
        if all(os.path.isfile(dst) for dst in paths.values()):
            result.status = "skipped"
            return result
        check_geometry(case.case_id, list(paths))
        for src in paths:
            check_finite(case.case_id, src)
        seg = None
        if case.seg is not None:
            seg, result.background_voxels = read_relabelled_seg(case.case_id, case.seg, scheme)
        _write_case(paths, case.seg, seg)
        result.status = "converted"
    except CaseError as e:
        result.status, result.message = "error", str(e)
    except Exception as e:  # unreadable or corrupt files: report the case, keep converting the others
        result.status, result.message = "error", f"{case.case_id}: {type(e).__name__}: {e}".strip()
    return result
