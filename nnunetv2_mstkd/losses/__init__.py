"""MST-KDNet losses (METHOD §4): each a pure function beside a thin ``nn.Module``.

* MS-TKD: :func:`attention_distillation_loss` (of the maps; :func:`attention_distillation_loss_qk` forms
  them from queries and keys, which is what training uses), :func:`feature_distillation_loss`.
* DMLD: :func:`probability_consistency_loss` with :func:`consistency_ramp`, and
  :func:`logit_standardized_kd_loss`.
* GSME: :func:`gram_loss`, :func:`discriminator_loss`, :func:`generator_loss`.

All compute in float32 and detach the teacher's tensors.
"""
from nnunetv2_mstkd.losses.adversarial import DiscriminatorLoss, GeneratorLoss, discriminator_loss, generator_loss
from nnunetv2_mstkd.losses.attention_kd import AttentionDistillationLoss, attention_distillation_loss
from nnunetv2_mstkd.losses.attention_kd_qk import attention_distillation_loss_qk
from nnunetv2_mstkd.losses.feature_kd import FeatureDistillationLoss, feature_distillation_loss, standardize_per_channel
from nnunetv2_mstkd.losses.gram import GramStyleLoss, correlation_matrix, gram_loss, gram_matrix
from nnunetv2_mstkd.losses.logit_standardized_kd import LogitStandardizedKDLoss, logit_standardized_kd_loss, zscore
from nnunetv2_mstkd.losses.prob_consistency import (
    ProbabilityConsistencyLoss,
    consistency_ramp,
    logits_to_probabilities,
    probability_consistency_loss,
)

__all__ = [
    "AttentionDistillationLoss",
    "DiscriminatorLoss",
    "FeatureDistillationLoss",
    "GeneratorLoss",
    "GramStyleLoss",
    "LogitStandardizedKDLoss",
    "ProbabilityConsistencyLoss",
    "attention_distillation_loss",
    "attention_distillation_loss_qk",
    "consistency_ramp",
    "correlation_matrix",
    "discriminator_loss",
    "feature_distillation_loss",
    "generator_loss",
    "gram_loss",
    "gram_matrix",
    "logit_standardized_kd_loss",
    "logits_to_probabilities",
    "probability_consistency_loss",
    "standardize_per_channel",
    "zscore",
]
