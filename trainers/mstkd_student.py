"""The MST-KDNet student and its ablations.

* ``nnUNetTrainerMSTKD``: modality dropout + MS-TKD + DMLD + GSME against the frozen teacher.
* ``nnUNetTrainerMSTKD_noMSTKD`` / ``_noDMLD`` / ``_noGSME``: one loss family switched off.
* ``nnUNetTrainerMSTKD_noKD``: the same network and dropout with no teacher at all, to tell the
  architecture's share of a gain from the distillation's.
* ``nnUNetTrainerMSTKD_noInit``: the full student started from random weights instead of the teacher's.
* ``nnUNetTrainerMSTKD_initOnly``: started from the teacher's weights, trained with modality dropout and
  no distillation term, to tell the initialisation's share of a gain from the losses'.
* ``nnUNetTrainerMSTKD_mdTeacher``: every term, but the frozen teacher (and the starting point) is the
  ``_noKD`` model, trained with modality dropout, instead of a teacher that only ever saw complete scans.

Short CPU schedules (``..._{E}ep{I}it``) are written out at the end of the module.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.schedule import CPUInference, ShortSchedule
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


class nnUNetTrainerMSTKD_mdTeacher(nnUNetTrainerMSTKD):
    """Variant: distilled from (and started from) the same network trained with modality dropout (``_noKD``).

    At distillation time the teacher still sees every sequence; it differs from the paper's teacher only in
    how it was trained. Tested because a teacher trained on complete scans alone can ignore a weak sequence
    (T1) and lean on cross-sequence shortcuts, and a student started from it and pulled towards it inherits
    both (docs/results/subset_floor/PLAN.md).
    """

    teacher_trainer_name = "nnUNetTrainerMSTKD_noKD"


# ---- short CPU schedules: <trainer>_<E>ep<I>it = E epochs of I iterations, CPU inference settings ----


class nnUNetTrainerMSTKD_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_noMSTKD_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noMSTKD):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_noDMLD_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noDMLD):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_noGSME_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noGSME):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_noKD_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noKD):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_noInit_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noInit):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_initOnly_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_initOnly):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_mdTeacher_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_mdTeacher):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_5ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 5, 25


class nnUNetTrainerMSTKD_2ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 2, 10


class nnUNetTrainerMSTKD_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_noMSTKD_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noMSTKD):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_noDMLD_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noDMLD):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_noGSME_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noGSME):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_noKD_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noKD):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_noInit_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noInit):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_initOnly_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_initOnly):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_mdTeacher_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_mdTeacher):
    schedule_epochs, schedule_iterations = 1, 10
