"""Diagnostic students on the code of commit 30e3c38: which GSME part collapses T1-only?"""
from nnunetv2_mstkd.trainers.mstkd_student import nnUNetTrainerMSTKD_10ep25it


class nnUNetTrainerMSTKDDiagGramOnly_10ep25it(nnUNetTrainerMSTKD_10ep25it):
    """Old GSME with the adversarial term off (Gram only)."""

    lambda_adv = 0.0


class nnUNetTrainerMSTKDDiagAdvOnly_10ep25it(nnUNetTrainerMSTKD_10ep25it):
    """Old GSME with the Gram term off (adversarial only)."""

    lambda_gram = 0.0
