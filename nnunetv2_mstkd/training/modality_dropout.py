"""Modality dropout: each training sample sees a random non-empty subset of its channels.

Applied in ``train_step``, i.e. after nnU-Net's normalisation and augmentation,
through :func:`nnunetv2_mstkd.modalities.zero_absent_channels`, the same code that
inference uses for a missing sequence (METHOD §2).

Only image channels are dropped. In a cascade's full-resolution stage nnU-Net appends the
previous stage's segmentation as one-hot channels after the images; those are never absent at
inference (the previous stage always predicts them), so they are never dropped, and a subset
such as "masks only" is never drawn.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from nnunetv2_mstkd.modalities import all_subsets, zero_absent_channels
from nnunetv2_mstkd.training.subset_validation import SubsetValidationMixin


def subset_table(num_channels: int, subsets: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """Boolean ``(S, C)`` table of the allowed subsets (default: all non-empty ones).

    Raises:
        ValueError: For an empty subset or a channel index out of range.
    """
    subsets = all_subsets(num_channels) if subsets is None else subsets
    table = torch.zeros(len(subsets), num_channels, dtype=torch.bool)
    for row, subset in enumerate(subsets):
        if len(subset) == 0:
            raise ValueError("A modality subset must keep at least one channel; the empty subset is never sampled.")
        for c in subset:
            if not 0 <= c < num_channels:
                raise ValueError(f"Channel {c} in subset {tuple(subset)} is out of range for {num_channels} channels.")
            table[row, c] = True
    return table


def sample_presence(batch_size: int, num_channels: int, subsets: Sequence[Sequence[int]] | None = None,
                    weights: Sequence[float] | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one subset per sample: a boolean ``(B, C)`` presence mask.

    Args:
        batch_size: Number of samples.
        num_channels: Number of input channels.
        subsets: Allowed subsets as channel-index tuples; default all ``2**C - 1`` non-empty
            subsets (the paper's choice; the full set is one of them).
        weights: Optional relative sampling weights, one per subset; default uniform.
        generator: Optional torch generator for reproducible draws.
    """
    table = subset_table(num_channels, subsets)
    if weights is None:
        idx = torch.randint(len(table), (batch_size,), generator=generator)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (len(table),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(table)} non-negative numbers with a positive sum, got {list(w)}.")
        idx = torch.multinomial(w, batch_size, replacement=True, generator=generator)
    return table[idx]


def drop_modalities(data: torch.Tensor, subsets: Sequence[Sequence[int]] | None = None,
                    weights: Sequence[float] | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero a random subset of channels per sample of a normalised batch ``(B, C, *spatial)``.

    Returns:
        ``(masked data, presence mask (B, C) on data's device)``.
    """
    present = sample_presence(data.shape[0], data.shape[1], subsets, weights, generator)
    return zero_absent_channels(data, present), present.to(data.device)


class ModalityDropoutMixin(SubsetValidationMixin):
    """Trainer mix-in: modality dropout on the training batches; validation and selection over the same subsets.

    Class attributes (override in a subclass, the nnU-Net way):
        modality_subsets: Allowed subsets (channel-index tuples) or None for all non-empty ones.
        modality_subset_weights: Relative sampling weights or None for uniform.
        subset_validation, subset_validation_at_end: see
            :class:`~nnunetv2_mstkd.training.subset_validation.SubsetValidationMixin`.
    """

    modality_subset_weights: tuple[float, ...] | None = None

    def drop_modalities(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply this trainer's modality dropout to the image channels of a batch; any others pass through.

        Returns:
            ``(batch, presence mask (B, image channels))``.
        """
        present = sample_presence(data.shape[0], self.num_image_channels(), self.modality_subsets,
                                  self.modality_subset_weights)
        return self.mask_image_channels(data, present), present.to(data.device)

    def train_step(self, batch: dict) -> dict:
        batch = dict(batch)
        batch["data"], _ = self.drop_modalities(batch["data"])
        return super().train_step(batch)
