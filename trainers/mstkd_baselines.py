"""Baselines: vanilla nnU-Net and nnU-Net with modality dropout, plus their short CPU schedules.

* ``nnUNetTrainer_{E}ep{I}it``: nnU-Net's own trainer, short (tests, demo).
* ``nnUNetTrainerModalityDropout``: nnU-Net's network and loss, trained with a random
  non-empty modality subset per sample; no teacher. The strongest simple baseline.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.modality_dropout import ModalityDropoutMixin
from nnunetv2_mstkd.training.schedule import short_variants


class nnUNetTrainerModalityDropout(ModalityDropoutMixin, nnUNetTrainer):
    """nnU-Net with modality dropout (uniform over the non-empty subsets), no distillation."""


globals().update(short_variants(nnUNetTrainer, __name__))
globals().update(short_variants(nnUNetTrainerModalityDropout, __name__))
