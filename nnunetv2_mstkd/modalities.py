"""MRI modalities: names, aliases, the 15 non-empty subsets and the absent-channel rule.

The project's channel order follows nnU-Net's BraTS conversion: ``_0000`` T1,
``_0001`` T1ce, ``_0002`` T2, ``_0003`` FLAIR. An absent modality is an
all-zero channel *after* nnU-Net's normalisation (METHOD §2); both training-time
dropout and inference use :func:`zero_absent_channels`, so they build the same
tensor.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: data tools and their worker processes start faster without it
    import torch

#: Channel names written to ``dataset.json`` by our synthetic data and converters.
BRATS_CHANNELS: tuple[str, ...] = ("T1", "T1ce", "T2", "FLAIR")

#: Paper names (column headers) for the canonical channels.
PAPER_NAMES: dict[str, str] = {"T1": "T1", "T1ce": "T1Gd", "T2": "T2", "FLAIR": "FL"}

#: Lower-case alias -> canonical channel name.
ALIASES: dict[str, str] = {
    "t1": "T1", "t1n": "T1", "t1w": "T1", "t1native": "T1",
    "t1ce": "T1ce", "t1gd": "T1ce", "t1c": "T1ce", "t1post": "T1ce", "t1-ce": "T1ce",
    "t2": "T2", "t2w": "T2",
    "flair": "FLAIR", "t2f": "FLAIR", "fl": "FLAIR", "t2flair": "FLAIR", "t2-flair": "FLAIR",
}

#: The paper's column order (METHOD §5), as tuples of canonical channel names.
PAPER_SUBSET_ORDER: tuple[tuple[str, ...], ...] = (
    ("T2",), ("T1ce",), ("T1",), ("FLAIR",),
    ("T1ce", "T2"), ("T1", "T1ce"), ("FLAIR", "T1"), ("T1", "T2"), ("FLAIR", "T2"),
    ("FLAIR", "T1ce"), ("FLAIR", "T1", "T1ce"), ("FLAIR", "T1", "T2"),
    ("FLAIR", "T1ce", "T2"), ("T1", "T1ce", "T2"), ("T1", "T1ce", "T2", "FLAIR"),
)


def canonical_name(name: str) -> str | None:
    """Return the canonical BraTS channel name for ``name`` (any alias, any case), or None."""
    return ALIASES.get(name.strip().lower().replace("_", "").replace(" ", ""))


def resolve_channels(requested: Iterable[str | int], channel_names: Sequence[str]) -> list[int]:
    """Turn channel names, aliases or indices into channel indices of a dataset.

    Args:
        requested: Names as in ``dataset.json`` (case-insensitive), aliases such as
            ``T1Gd``/``T1c``/``t2f``, or integer indices (also as strings, ``"1"``).
        channel_names: The dataset's channel names in channel order.

    Returns:
        Sorted, de-duplicated channel indices.

    Raises:
        ValueError: For an unknown name or an out-of-range index; the message lists
            the valid channels.
    """
    valid = ", ".join(f"{i}={n}" for i, n in enumerate(channel_names))
    lowered = [n.lower() for n in channel_names]
    canon = [canonical_name(n) for n in channel_names]
    out: set[int] = set()
    for item in requested:
        text = str(item).strip()
        if text.lstrip("-").isdigit():
            idx = int(text)
            if not 0 <= idx < len(channel_names):
                raise ValueError(f"Channel index {idx} is out of range. Valid channels: {valid}.")
            out.add(idx)
            continue
        if text.lower() in lowered:
            out.add(lowered.index(text.lower()))
            continue
        c = canonical_name(text)
        if c is not None and c in canon:
            out.add(canon.index(c))
            continue
        raise ValueError(f"Unknown channel {text!r}. Valid channels: {valid} (aliases such as T1Gd, T1c, "
                         f"T2f, T1n, T2w are accepted).")
    return sorted(out)


def channel_names_of(dataset_json: dict) -> list[str]:
    """Channel names in channel order from a ``dataset.json`` (``channel_names``, or the older ``modality``).

    Raises:
        ValueError: If the ``dataset.json`` names no channels.
    """
    names = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not names:
        raise ValueError("dataset.json has no 'channel_names'; is this an nnU-Net v2 dataset or model folder?")
    return [names[k] for k in sorted(names, key=int)]


def all_subsets(num_channels: int) -> list[tuple[int, ...]]:
    """All non-empty subsets of ``range(num_channels)``, smallest first (15 for 4 channels)."""
    return [s for k in range(1, num_channels + 1) for s in combinations(range(num_channels), k)]


def paper_subsets(channel_names: Sequence[str]) -> list[tuple[int, ...]]:
    """The 15 subsets in the paper's column order, as index tuples for this dataset.

    Falls back to :func:`all_subsets` order when the channels are not the four BraTS ones.
    """
    canon = [canonical_name(n) for n in channel_names]
    if sorted(c or "" for c in canon) != sorted(BRATS_CHANNELS):
        return all_subsets(len(channel_names))
    return [tuple(sorted(canon.index(c) for c in subset)) for subset in PAPER_SUBSET_ORDER]


def subset_label(present: Iterable[int], channel_names: Sequence[str]) -> str:
    """Column label of a subset in the paper's style, e.g. ``FL+T1Gd`` or ``All``."""
    present = sorted(present)
    if len(present) == len(channel_names):
        return "All"
    names = [PAPER_NAMES.get(canonical_name(channel_names[i]) or "", channel_names[i]) for i in present]
    canon_order = [canonical_name(channel_names[i]) for i in present]
    for subset in PAPER_SUBSET_ORDER:
        if sorted(subset) == sorted(c or "" for c in canon_order):
            return "+".join(PAPER_NAMES[c] for c in subset)
    return "+".join(names)


def subset_suffix(subset: Iterable[int], channel_names: Sequence[str]) -> str:
    """A subset's sequences in BraTS order joined by ``_``, as in trainer names: ``(3, 1)`` -> ``T1ce_FLAIR``.

    Raises:
        ValueError: If a channel is not one of the BraTS sequences (any alias).
    """
    canon = [canonical_name(channel_names[i]) for i in subset]
    if None in canon:
        raise ValueError(f"Channels {list(channel_names)} are not the BraTS sequences {list(BRATS_CHANNELS)}.")
    return "_".join(sorted(canon, key=BRATS_CHANNELS.index))


def presence_mask(present: Iterable[int], num_channels: int) -> np.ndarray:
    """Boolean vector, True for each channel that is present."""
    m = np.zeros(num_channels, dtype=bool)
    m[list(present)] = True
    return m


def zero_absent_channels(x: torch.Tensor | np.ndarray, present: torch.Tensor | np.ndarray,
                         allow_all_absent: bool = False) -> torch.Tensor | np.ndarray:
    """Zero the absent channels of a normalised image or batch.

    This is the single definition of "absent" in the project (METHOD §2): the
    channel is all zeros *after* nnU-Net's normalisation.

    Args:
        x: ``(C, *spatial)`` for one case or ``(B, C, *spatial)`` for a batch.
        present: Boolean ``(C,)`` for one case, or ``(B, C)`` for a batch.
        allow_all_absent: Accept a sample with no channel present (a dedicated model given none of its
            sequences sees zeros); refused by default.

    Returns:
        A new array/tensor of the same type, dtype and device as ``x``.

    Raises:
        ValueError: If every channel of a sample would be absent (unless allowed), or shapes disagree.
    """
    import torch

    is_torch = isinstance(x, torch.Tensor)
    if is_torch:
        # checked where it was made: a mask drawn on the host makes the device wait for nothing
        m = torch.as_tensor(present, dtype=torch.bool)
    else:
        m = np.asarray(present, dtype=bool)
    batched = m.ndim == 2
    c_axis = 1 if batched else 0
    if m.shape[-1] != x.shape[c_axis] or (batched and m.shape[0] != x.shape[0]):
        raise ValueError(f"Presence mask of shape {tuple(m.shape)} does not match image of shape "
                         f"{tuple(x.shape)} (channels on axis {c_axis}).")
    if not allow_all_absent and not bool(m.any(-1).all()):
        raise ValueError("Every channel is absent in at least one sample; at least one modality must be present.")
    shape = tuple(m.shape) + (1,) * (x.ndim - m.ndim)
    m = m.reshape(shape)
    return x * m.to(device=x.device, dtype=x.dtype) if is_torch else x * m.astype(x.dtype)
