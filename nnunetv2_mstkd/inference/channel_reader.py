"""Read the present channels of a case with the model's image reader, and fill the absent ones with zeros.

Each present file is read on its own with nnU-Net's reader/writer from the plans,
so the geometry of every file is known and a mismatch can name the files. The
arrays are then stacked as nnU-Net's readers stack them. An absent channel is a
block of raw zeros of the same shape: it only lets nnU-Net's preprocessor run
with the model's channel count; it is zeroed again after normalisation
(:func:`nnunetv2_mstkd.modalities.zero_absent_channels`).

Every present file is checked for NaN and Inf voxels as stored on disk
(:func:`~nnunetv2_mstkd.data.nonfinite.count_nonfinite`): the reader would turn them
into 0 without a word. Such a case is refused unless the caller accepts it, in which
case they are 0 (with a warning).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from nnunetv2_mstkd.data.nonfinite import count_nonfinite

# Geometry differences below this are float noise from file headers, as nnU-Net's own np.allclose checks assume.
_ATOL = 1e-4


def _orientation(properties: dict) -> np.ndarray | None:
    """Direction cosines of an image as the reader reports them, or None if the reader keeps none."""
    if "sitk_stuff" in properties:
        return np.asarray(properties["sitk_stuff"]["direction"], dtype=float)
    if "nibabel_stuff" in properties:
        rotation_zoom = np.asarray(properties["nibabel_stuff"]["original_affine"], dtype=float)[:3, :3]
        return rotation_zoom / np.linalg.norm(rotation_zoom, axis=0, keepdims=True)
    return None


def _origin(properties: dict) -> np.ndarray | None:
    if "sitk_stuff" in properties:
        return np.asarray(properties["sitk_stuff"]["origin"], dtype=float)
    if "nibabel_stuff" in properties:
        return np.asarray(properties["nibabel_stuff"]["original_affine"], dtype=float)[:3, 3]
    return None


def _differs(a, b) -> bool:
    if a is None or b is None:
        return False
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape != b.shape or not np.allclose(a, b, atol=_ATOL)


def check_finite(path: str, label: str, allow_nonfinite: bool = False) -> None:
    """Refuse (``ValueError``) or, with ``allow_nonfinite``, warn about NaN/Inf voxels stored in ``path``."""
    n_nan, n_inf = count_nonfinite(path)
    if not (n_nan or n_inf):
        return
    counts = f"{n_nan} NaN and {n_inf} Inf voxels"
    if not allow_nonfinite:
        raise ValueError(f"case {label}: {path} contains {counts}. Replace them in the file (e.g. with 0), or pass "
                         f"--allow_nonfinite to predict with them set to 0.")
    print(f"WARNING: case {label}: {path} contains {counts}; predicting with them set to 0 (--allow_nonfinite).")


def read_present_channels(image_files: Sequence[str | None], reader_writer: BaseReaderWriter,
                          case_id: str | None = None, allow_nonfinite: bool = False
                          ) -> tuple[np.ndarray, dict, np.ndarray]:
    """Read one case, one file per channel, None for an absent channel.

    Args:
        image_files: Path per channel in channel order; None where the channel is absent.
        reader_writer: An instance of the plans' ``image_reader_writer`` class.
        case_id: Used in error messages (default: derived from the first present file).
        allow_nonfinite: Predict a file with NaN/Inf voxels with them set to 0 (with a warning)
            instead of refusing the case.

    Returns:
        ``(data, properties, present)``: float32 ``(C, *spatial)`` with zeros in the absent
        channels, the reader's properties of the first present file (what nnU-Net would
        keep for export) and the boolean presence vector.

    Raises:
        ValueError: If every channel is absent, a file holds NaN or Inf voxels (unless allowed), or
            the present files disagree in shape, spacing or orientation (the message names the
            files and values).
    """
    present = np.array([f is not None for f in image_files], dtype=bool)
    files = [f for f in image_files if f is not None]
    label = case_id or (os.path.basename(files[0]) if files else "?")
    if not files:
        raise ValueError(f"case {label}: every channel is absent; at least one of the {len(image_files)} "
                         f"channel files is needed.")
    arrays, props = [], []
    for f in files:
        check_finite(f, label, allow_nonfinite)
        arr, p = reader_writer.read_images([f])
        if allow_nonfinite:
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if arr.shape[0] != 1:
            raise ValueError(f"case {label}: {f} holds {arr.shape[0]} channels; give one file per channel "
                             f"(CASE_XXXX files).")
        arrays.append(arr)
        props.append(p)
    ref_file, ref = files[0], props[0]
    for f, arr, p in zip(files[1:], arrays[1:], props[1:]):
        checks = (("shape", arrays[0].shape[1:], arr.shape[1:]), ("spacing", ref["spacing"], p["spacing"]),
                  ("orientation", _orientation(ref), _orientation(p)))
        for what, a, b in checks:
            if _differs(a, b):
                a_text = tuple(np.round(np.asarray(a, float), 6).ravel().tolist())
                b_text = tuple(np.round(np.asarray(b, float), 6).ravel().tolist())
                raise ValueError(f"case {label}: channel files disagree in {what}: {ref_file} has {a_text}, "
                                 f"{f} has {b_text}. Resample the channels of a case onto one grid first.")
        if _differs(_origin(ref), _origin(p)):
            print(f"WARNING: case {label}: {ref_file} and {f} have different origins ({_origin(ref)} vs "
                  f"{_origin(p)}); check that the channels overlap.")
    data = np.zeros((len(image_files), *arrays[0].shape[1:]), dtype=np.float32)
    data[present] = np.concatenate(arrays, axis=0)
    return data, ref, present
