"""The full-modality teacher: nnU-Net's planned network with transformer blocks, all modalities, nnU-Net's loss.

Train it before the student, on the same dataset, plans, configuration and fold::

    nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerMSTKDTeacher
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.network_mixin import MSTKDNetworkMixin
from nnunetv2_mstkd.training.schedule import CPUInference, ShortSchedule


class nnUNetTrainerMSTKDTeacher(MSTKDNetworkMixin, nnUNetTrainer):
    """Transformer-augmented nnU-Net on all modalities: no dropout, no distillation."""


# ---- short CPU schedules: <trainer>_<E>ep<I>it = E epochs of I iterations, CPU inference settings ----


class nnUNetTrainerMSTKDTeacher_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKDTeacher):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKDTeacher_5ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKDTeacher):
    schedule_epochs, schedule_iterations = 5, 25


class nnUNetTrainerMSTKDTeacher_2ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKDTeacher):
    schedule_epochs, schedule_iterations = 2, 10


class nnUNetTrainerMSTKDTeacher_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKDTeacher):
    schedule_epochs, schedule_iterations = 1, 10
