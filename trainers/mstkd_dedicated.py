"""Dedicated models: one nnU-Net per modality subset, all 15 written out (the reference row of the benchmark).

``nnUNetTrainerDedicated_<sequences>`` is nnU-Net"s own trainer whose network zeroes every channel
outside its subset (:mod:`nnunetv2_mstkd.training.dedicated`); ``_10ep25it`` and ``_1ep10it`` are the
short CPU schedules used by the published results and the tests. Score the zoo as one row with
``mstkd_benchmark --dedicated nnUNetTrainerDedicated_{subset}``.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.dedicated import DedicatedSubsetMixin
from nnunetv2_mstkd.training.schedule import CPUInference, ShortSchedule


class nnUNetTrainerDedicated_T1(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1",)


class nnUNetTrainerDedicated_T1ce(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1ce",)


class nnUNetTrainerDedicated_T2(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T2",)


class nnUNetTrainerDedicated_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("FLAIR",)


class nnUNetTrainerDedicated_T1_T1ce(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T1ce")


class nnUNetTrainerDedicated_T1_T2(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T2")


class nnUNetTrainerDedicated_T1_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "FLAIR")


class nnUNetTrainerDedicated_T1ce_T2(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1ce", "T2")


class nnUNetTrainerDedicated_T1ce_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1ce", "FLAIR")


class nnUNetTrainerDedicated_T2_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T2", "FLAIR")


class nnUNetTrainerDedicated_T1_T1ce_T2(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T1ce", "T2")


class nnUNetTrainerDedicated_T1_T1ce_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T1ce", "FLAIR")


class nnUNetTrainerDedicated_T1_T2_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T2", "FLAIR")


class nnUNetTrainerDedicated_T1ce_T2_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1ce", "T2", "FLAIR")


class nnUNetTrainerDedicated_T1_T1ce_T2_FLAIR(DedicatedSubsetMixin, nnUNetTrainer):
    dedicated_channels = ("T1", "T1ce", "T2", "FLAIR")


# ---- short CPU schedules ----


class nnUNetTrainerDedicated_T1_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1ce_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1ce):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T2_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T2):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T1ce_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T1ce):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T2_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T2):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1ce_T2_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1ce_T2):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1ce_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1ce_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T2_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T2_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T1ce_T2_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T1ce_T2):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T1ce_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T1ce_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T2_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T2_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1ce_T2_FLAIR_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1ce_T2_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1_T1ce_T2_FLAIR_10ep25it(CPUInference, ShortSchedule,
                                                       nnUNetTrainerDedicated_T1_T1ce_T2_FLAIR):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerDedicated_T1ce_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1ce):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerDedicated_T1_T2_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerDedicated_T1_T2):
    schedule_epochs, schedule_iterations = 1, 10
