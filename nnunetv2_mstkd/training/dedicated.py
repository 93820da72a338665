"""Dedicated models: nnU-Net trained on one fixed modality subset.

A dedicated model is the reference every unified missing-modality model is measured against
(one nnU-Net per sequence combination, as in Ruffle et al. 2023). Here it is nnU-Net's own
trainer whose network ignores the channels outside its subset: a forward pre-hook zeroes them
(the project's one definition of "absent", :func:`~nnunetv2_mstkd.modalities.zero_absent_channels`)
on every call, in training, in nnU-Net's validation, in ``nnUNetv2_predict`` and in the
benchmark. It is therefore exactly modality dropout with a single allowed subset. A channel it does
not use still takes part in nnU-Net's preprocessing (the crop to the non-zero region and the mask of
the z-score normalisation are the union over all channels), so with the stock ``nnUNetv2_predict``
give it a file with the same brain region (for example a copy of a sequence it uses);
``mstkd_predict --missing`` needs no file at all.

The hook is attached in ``build_network_architecture``, which nnU-Net's predictor also calls,
so a dedicated checkpoint predicts correctly through the stock ``nnUNetv2_predict``. It holds
no parameters: the checkpoint is a plain nnU-Net state dict.

Channels are named in the BraTS order of nnU-Net's conversion (``_0000`` T1, ``_0001`` T1ce,
``_0002`` T2, ``_0003`` FLAIR); a dataset with other channels is refused at ``initialize``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunetv2_mstkd.modalities import BRATS_CHANNELS, canonical_name, zero_absent_channels


def keep_channels(network: nn.Module, channels: Sequence[int], num_channels: int) -> nn.Module:
    """Make ``network`` zero every input channel outside ``channels`` before each forward; returns it."""
    present = torch.zeros(num_channels, dtype=torch.bool)
    present[list(channels)] = True

    def zero_others(module: nn.Module, args: tuple) -> tuple:
        # a dedicated model scored on a subset that lacks all of its sequences sees zeros, what it would get
        x = args[0]
        return (zero_absent_channels(x, present.expand(x.shape[0], num_channels), allow_all_absent=True), *args[1:])

    network.register_forward_pre_hook(zero_others)
    return network


class DedicatedSubsetMixin:
    """Trainer mix-in (before nnU-Net's trainer in the bases): a model for one fixed modality subset.

    Class attributes:
        dedicated_channels: Canonical BraTS names of the sequences the model uses.
    """

    dedicated_channels: tuple[str, ...] = BRATS_CHANNELS

    @classmethod
    def dedicated_indices(cls) -> tuple[int, ...]:
        """Channel indices of ``dedicated_channels`` in the BraTS order."""
        return tuple(sorted(BRATS_CHANNELS.index(c) for c in cls.dedicated_channels))

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        if num_input_channels < len(BRATS_CHANNELS):
            raise ValueError(f"{cls.__name__} needs the {len(BRATS_CHANNELS)} BraTS channels "
                             f"{list(BRATS_CHANNELS)}; the plans give {num_input_channels} input channels.")
        return keep_channels(network, cls.dedicated_indices(), num_input_channels)

    def initialize(self) -> None:
        names = list(self.dataset_json.get("channel_names", {}).values())
        if [canonical_name(n) for n in names[:len(BRATS_CHANNELS)]] != list(BRATS_CHANNELS):
            raise ValueError(f"{type(self).__name__} uses channels {list(self.dedicated_channels)} by their place in "
                             f"nnU-Net's BraTS conversion (0=T1, 1=T1ce, 2=T2, 3=FLAIR), but this dataset's channels "
                             f"are {names}. Convert the dataset in that order (mstkd_convert) to train "
                             f"dedicated models.")
        super().initialize()
