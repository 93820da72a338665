"""The MST-KDNet student and its ablations.

* ``nnUNetTrainerMSTKD``: modality dropout + MS-TKD + DMLD + GSME against the frozen teacher.
* ``nnUNetTrainerMSTKD_noMSTKD`` / ``_noDMLD`` / ``_noGSME``: one loss family switched off.
* ``nnUNetTrainerMSTKD_noKD``: the same network and dropout with no teacher at all, to tell the
  architecture's share of a gain from the distillation's.
* ``nnUNetTrainerMSTKD_noInit``: the full student started from random weights instead of the teacher's.
* ``nnUNetTrainerMSTKD_initOnly``: started from the teacher's weights, trained with modality dropout and
  no distillation term, to tell the initialisation's share of a gain from the losses'.

Every class also comes in the short CPU schedules ``..._{E}ep{I}it``.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.schedule import short_variants
from nnunetv2_mstkd.training.student import MSTKDStudentMixin


class nnUNetTrainerMSTKD(MSTKDStudentMixin, nnUNetTrainer):
    """MST-KDNet student: one model for every modality subset, distilled from the full-modality teacher."""


class nnUNetTrainerMSTKD_noMSTKD(nnUNetTrainerMSTKD):
    """Ablation: no multi-scale transformer distillation (attention and feature terms off)."""

    lambda_att = 0.0
    lambda_feat = 0.0


class nnUNetTrainerMSTKD_noDMLD(nnUNetTrainerMSTKD):
    """Ablation: no dual-mode logit distillation."""

    lambda_prob = 0.0
    lambda_lskd = 0.0


class nnUNetTrainerMSTKD_noGSME(nnUNetTrainerMSTKD):
    """Ablation: no global style matching (no Gram term, no discriminator)."""

    lambda_gram = 0.0
    lambda_adv = 0.0


class nnUNetTrainerMSTKD_noKD(nnUNetTrainerMSTKD):
    """Ablation: the MST-KD network with modality dropout, trained without any teacher."""

    use_teacher = False


class nnUNetTrainerMSTKD_noInit(nnUNetTrainerMSTKD):
    """Ablation: every distillation term, but the student starts from random weights."""

    init_from_teacher = False


class nnUNetTrainerMSTKD_initOnly(nnUNetTrainerMSTKD):
    """Control: the student starts from the teacher's weights and trains with dropout, no distillation term."""

    lambda_att = lambda_feat = lambda_prob = lambda_lskd = lambda_gram = lambda_adv = 0.0


for _base in (nnUNetTrainerMSTKD, nnUNetTrainerMSTKD_noMSTKD, nnUNetTrainerMSTKD_noDMLD, nnUNetTrainerMSTKD_noGSME,
              nnUNetTrainerMSTKD_noKD, nnUNetTrainerMSTKD_noInit, nnUNetTrainerMSTKD_initOnly):
    globals().update(short_variants(_base, __name__))
del _base
