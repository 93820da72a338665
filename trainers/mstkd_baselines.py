"""Baselines: vanilla nnU-Net and nnU-Net with modality dropout, plus their short CPU schedules.

* ``nnUNetTrainer_{E}ep{I}it``: nnU-Net's own trainer, short (tests, demo).
* ``nnUNetTrainerModalityDropout``: nnU-Net's network and loss, trained with a random
  non-empty modality subset per sample; no teacher. The strongest simple baseline.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.modality_dropout import ModalityDropoutMixin
from nnunetv2_mstkd.training.schedule import CPUInference, ShortSchedule


class nnUNetTrainerModalityDropout(ModalityDropoutMixin, nnUNetTrainer):
    """nnU-Net with modality dropout (uniform over the non-empty subsets), no distillation."""


# ---- short CPU schedules: <trainer>_<E>ep<I>it = E epochs of I iterations, CPU inference settings ----


class nnUNetTrainer_10ep25it(CPUInference, ShortSchedule, nnUNetTrainer):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerModalityDropout_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerModalityDropout):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainer_5ep25it(CPUInference, ShortSchedule, nnUNetTrainer):
    schedule_epochs, schedule_iterations = 5, 25


class nnUNetTrainer_1ep10it(CPUInference, ShortSchedule, nnUNetTrainer):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerModalityDropout_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerModalityDropout):
    schedule_epochs, schedule_iterations = 1, 10
