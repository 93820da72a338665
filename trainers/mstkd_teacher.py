"""The full-modality teacher: nnU-Net's planned network with transformer blocks, all modalities, nnU-Net's loss.

Train it before the student, on the same dataset, plans, configuration and fold::

    nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerMSTKDTeacher
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.network_mixin import MSTKDNetworkMixin
from nnunetv2_mstkd.training.schedule import short_variants


class nnUNetTrainerMSTKDTeacher(MSTKDNetworkMixin, nnUNetTrainer):
    """Transformer-augmented nnU-Net on all modalities: no dropout, no distillation."""


globals().update(short_variants(nnUNetTrainerMSTKDTeacher, __name__))
