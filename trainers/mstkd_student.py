"""The MST-KDNet student, the paper's formulation and the ablations.

* ``nnUNetTrainerMSTKD``: modality dropout + MS-TKD + DMLD + GSME against a frozen teacher that sees
  every sequence; the teacher (and the starting point) is ``nnUNetTrainerMSTKD_noKD``, the same network
  trained with modality dropout. The project's default since the held-out subset-floor experiment
  (docs/results/subset_floor/HELDOUT.md; docs/method.md says how it differs from the paper).
* ``nnUNetTrainerMSTKD_paper``: the paper's formulation, distilled from ``nnUNetTrainerMSTKDTeacher``,
  a teacher trained on complete scans only.
* ``nnUNetTrainerMSTKD_noMSTKD`` / ``_noDMLD`` / ``_noGSME``: the paper's formulation with one loss
  family switched off (the paper's ablations).
* ``nnUNetTrainerMSTKD_noKD``: the same network and dropout with no teacher at all, to tell the
  architecture's share of a gain from the distillation's; the default student's teacher.
* ``nnUNetTrainerMSTKD_noInit``: the paper's student started from random weights instead of the teacher's.
* ``nnUNetTrainerMSTKD_initOnly``: started from the paper teacher's weights, trained with modality dropout
  and no distillation term, to tell the initialisation's share of a gain from the losses'.
* ``nnUNetTrainerMSTKD_mdTeacher``: the same as ``nnUNetTrainerMSTKD``, under the name its held-out runs
  were published with (before it became the default).

Short CPU schedules (``..._{E}ep{I}it``) are written out at the end of the module.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_mstkd.training.schedule import CPUInference, ShortSchedule
from nnunetv2_mstkd.training.student import MSTKDStudentMixin


class nnUNetTrainerMSTKD(MSTKDStudentMixin, nnUNetTrainer):
    """MST-KDNet student: one model for every modality subset, distilled from a frozen teacher that sees all.

    The teacher and starting point is ``nnUNetTrainerMSTKD_noKD`` (the same network trained with modality
    dropout): a teacher trained on complete scans alone can ignore a weak sequence (T1) and lean on
    cross-sequence shortcuts, and a student started from it and pulled towards it inherits both
    (docs/results/subset_floor/). ``nnUNetTrainerMSTKD_paper`` keeps the paper's teacher.
    """

    teacher_trainer_name = "nnUNetTrainerMSTKD_noKD"


class nnUNetTrainerMSTKD_paper(nnUNetTrainerMSTKD):
    """The paper's formulation: distilled from (and started from) ``nnUNetTrainerMSTKDTeacher``, complete scans only."""

    teacher_trainer_name = "nnUNetTrainerMSTKDTeacher"


class nnUNetTrainerMSTKD_noMSTKD(nnUNetTrainerMSTKD_paper):
    """Ablation: no multi-scale transformer distillation (attention and feature terms off)."""

    lambda_att = 0.0
    lambda_feat = 0.0


class nnUNetTrainerMSTKD_noDMLD(nnUNetTrainerMSTKD_paper):
    """Ablation: no dual-mode logit distillation."""

    lambda_prob = 0.0
    lambda_lskd = 0.0


class nnUNetTrainerMSTKD_noGSME(nnUNetTrainerMSTKD_paper):
    """Ablation: no global style matching (no Gram term, no discriminator)."""

    lambda_gram = 0.0
    lambda_adv = 0.0


class nnUNetTrainerMSTKD_noKD(nnUNetTrainerMSTKD):
    """Ablation: the MST-KD network with modality dropout, trained without any teacher."""

    use_teacher = False


class nnUNetTrainerMSTKD_noInit(nnUNetTrainerMSTKD_paper):
    """Ablation: every distillation term, but the student starts from random weights."""

    init_from_teacher = False


class nnUNetTrainerMSTKD_initOnly(nnUNetTrainerMSTKD_paper):
    """Control: the student starts from the teacher's weights and trains with dropout, no distillation term."""

    lambda_att = lambda_feat = lambda_prob = lambda_lskd = lambda_gram = lambda_adv = 0.0


class nnUNetTrainerMSTKD_mdTeacher(nnUNetTrainerMSTKD):
    """The default student under the name of its published held-out runs (docs/results/subset_floor/)."""


# ---- short CPU schedules: <trainer>_<E>ep<I>it = E epochs of I iterations, CPU inference settings ----


class nnUNetTrainerMSTKD_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 10, 25


class nnUNetTrainerMSTKD_paper_10ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_paper):
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


class nnUNetTrainerMSTKD_noKD_5ep25it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noKD):
    """The teacher of ``nnUNetTrainerMSTKD_5ep25it``."""

    schedule_epochs, schedule_iterations = 5, 25


class nnUNetTrainerMSTKD_noKD_2ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_noKD):
    """The teacher of ``nnUNetTrainerMSTKD_2ep10it``."""

    schedule_epochs, schedule_iterations = 2, 10


class nnUNetTrainerMSTKD_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD):
    schedule_epochs, schedule_iterations = 1, 10


class nnUNetTrainerMSTKD_paper_1ep10it(CPUInference, ShortSchedule, nnUNetTrainerMSTKD_paper):
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
