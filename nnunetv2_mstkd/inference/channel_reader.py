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
case they are 0 (with a warning). Channels that disagree in origin, spacing or direction
are refused too (a typo in a pipeline must not become a silently shifted channel) unless
the caller accepts it; channels of different shapes cannot be stacked and are always refused.
What a caller accepts is one :class:`ReadPolicy`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from nnunetv2_mstkd.data.nonfinite import count_nonfinite

# Geometry differences below this are float noise from file headers, as nnU-Net's own np.allclose checks assume.
_ATOL = 1e-4


@dataclass(frozen=True)
class ReadPolicy:
    """What a case's channel files may get away with (both refused by default).

    Attributes:
        allow_nonfinite: Predict NaN/Inf voxels as 0, with a warning (``--allow_nonfinite``).
        allow_geometry_mismatch: Go on, with a warning, when channels disagree in origin, spacing or
            direction (``--allow_geometry_mismatch``); nnU-Net then uses the first present file's geometry.
    """

    allow_nonfinite: bool = False
    allow_geometry_mismatch: bool = False


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
                          case_id: str | None = None, policy: ReadPolicy = ReadPolicy(),
                          channel_names: Sequence[str] | None = None) -> tuple[np.ndarray, dict, np.ndarray]:
    """Read one case, one file per channel, None for an absent channel.

    Args:
        image_files: Path per channel in channel order; None where the channel is absent.
        reader_writer: An instance of the plans' ``image_reader_writer`` class.
        case_id: Used in error messages (default: derived from the first present file).
        policy: What to accept instead of refusing the case (NaN/Inf voxels, geometry mismatches).
        channel_names: The channels' names, for messages (default: their indices).

    Returns:
        ``(data, properties, present)``: float32 ``(C, *spatial)`` with zeros in the absent
        channels, the reader's properties of the first present file (what nnU-Net would
        keep for export) and the boolean presence vector.

    Raises:
        ValueError: If every channel is absent, a file holds NaN or Inf voxels (unless allowed), the
            present files disagree in shape, or in origin, spacing or direction (unless allowed); the
            message names the case, the channels, the files and both values.
    """
    present = np.array([f is not None for f in image_files], dtype=bool)
    files = [f for f in image_files if f is not None]
    label = case_id or (os.path.basename(files[0]) if files else "?")
    if not files:
        raise ValueError(f"case {label}: every channel is absent; at least one of the {len(image_files)} "
                         f"channel files is needed.")
    arrays, props = [], []
    for f in files:
        check_finite(f, label, policy.allow_nonfinite)
        arr, p = reader_writer.read_images([f])
        if policy.allow_nonfinite:
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if arr.shape[0] != 1:
            raise ValueError(f"case {label}: {f} holds {arr.shape[0]} channels; give one file per channel "
                             f"(CASE_XXXX files).")
        arrays.append(arr)
        props.append(p)
    indices = [i for i, f in enumerate(image_files) if f is not None]
    names = [channel_names[i] if channel_names else f"_{i:04d}" for i in indices]
    ref_file, ref = files[0], props[0]
    for f, name, arr, p in zip(files[1:], names[1:], arrays[1:], props[1:]):
        checks = (("shape", arrays[0].shape[1:], arr.shape[1:]), ("spacing", ref["spacing"], p["spacing"]),
                  ("direction", _orientation(ref), _orientation(p)), ("origin", _origin(ref), _origin(p)))
        for what, a, b in checks:
            if not _differs(a, b):
                continue
            a_text, b_text = (tuple(int(v) for v in x) if what == "shape" else
                              tuple(np.round(np.asarray(x, float), 6).ravel().tolist()) for x in (a, b))
            text = (f"case {label}: channel {name} disagrees with channel {names[0]} in {what}: {ref_file} has "
                    f"{a_text}, {f} has {b_text}.")
            if what == "shape" or not policy.allow_geometry_mismatch:
                advice = "" if what == "shape" else " or pass --allow_geometry_mismatch to predict on the first grid"
                raise ValueError(f"{text} Resample the channels of a case onto one grid first{advice}.")
            print(f"WARNING: {text} Predicting on {names[0]}'s grid (--allow_geometry_mismatch).")
    data = np.zeros((len(image_files), *arrays[0].shape[1:]), dtype=np.float32)
    data[present] = np.concatenate(arrays, axis=0)
    return data, ref, present
