"""The three MST-KDNet loss families for one batch (METHOD §4.1–4.3).

:func:`distillation_terms` turns the student's and teacher's outputs and
auxiliary features into weighted ``L_MSTKD``, ``L_DMLD`` and ``L_GSME`` plus
their unweighted parts for logging. Terms whose weight is zero are not computed,
which is how the ablation trainers switch a family off.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nnunetv2_mstkd.losses import (
    attention_distillation_loss_qk,
    consistency_ramp,
    feature_distillation_loss,
    generator_loss,
    gram_loss,
    logit_standardized_kd_loss,
    probability_consistency_loss,
)


@dataclass(frozen=True)
class DistillationWeights:
    """Weights of every distillation and style term.

    Defaults put each family at a few per cent of ``L_seg + 1`` at the start of training of a student
    initialised from its teacher (``docs/benchmarks/loss_terms_at_start.md``; the experiments that
    chose them are in ``docs/results.md``); the paper's own weights are noted where it gives them.

    Attributes:
        att: λ_att, attention (EVD) distillation; the term is a relative error in [0, 2].
        feat: λ_feat, multi-scale feature distillation (paper: 0.2 on unstandardised features).
        prob: λ_prob, multiplies the ramped probability consistency ``w(e)·MSE``; with the paper's ramp
            to 10, 0.1 makes the fully ramped weight 1, so the term cannot outweigh ``L_seg``.
        lskd: λ_lskd, logit-standardised KL.
        gram: λ_gram, Gram-matrix style matching on standardised features (each level's term in [0, 4]).
        adv: λ_adv, the student's adversarial (non-saturating) loss (paper: 2e-4).
        temperature: T of the logit-standardised KL (7).
        ramp_fraction: E_r as a fraction of the training epochs (0.2).
    """

    att: float = 1.0
    feat: float = 0.1
    prob: float = 0.1
    lskd: float = 0.15
    gram: float = 0.5
    adv: float = 2e-4
    temperature: float = 7.0
    ramp_fraction: float = 0.2


def full_resolution(output) -> torch.Tensor:
    """The highest-resolution logits of an nnU-Net output (tensor or deep-supervision list)."""
    return output[0] if isinstance(output, (list, tuple)) else output


def style_levels(aux: dict) -> list[torch.Tensor]:
    """The three distinct feature maps whose Gram matrices GSME matches.

    The deepest encoder stage without a transformer block (the stage above the transformer
    stages; the first stage when every stage has a block), the bottleneck transformer's output
    and the first (lowest-resolution) decoder stage. The bottleneck's input is not among them:
    a zero-initialised transformer passes it through unchanged, so it would count twice.
    """
    encoder, transformers = aux["encoder_features"], aux["transformer_outputs"]
    above = max(0, len(encoder) - len(transformers) - 1)
    return [encoder[above], transformers[-1], aux["decoder_features"][-1]]


def distillation_terms(student_out, student_aux: dict, teacher_out, teacher_aux: dict, region: bool,
                       weights: DistillationWeights, epoch: int, num_epochs: int,
                       discriminator: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Weighted MS-TKD, DMLD and GSME losses of the student against the frozen teacher.

    Args:
        student_out: The student's network output (logits or deep-supervision list).
        student_aux: The student's ``forward_with_aux`` dict.
        teacher_out: The teacher's output for the full-modality input.
        teacher_aux: The teacher's ``forward_with_aux`` dict.
        region: True for region (sigmoid) training, False for label (softmax) training.
        weights: Term weights.
        epoch: Current epoch (for the consistency ramp).
        num_epochs: Planned epochs; ``E_r = ramp_fraction · num_epochs``.
        discriminator: The style discriminator, or None when ``weights.adv`` is 0.

    Returns:
        Float32 scalars: ``mstkd``, ``dmld``, ``gsme`` (weighted family sums that enter the loss)
        and the unweighted parts ``att``, ``feat``, ``prob``, ``lskd``, ``gram``, ``adv`` that
        were computed; ``ramp`` is the current ``w(e)``.
    """
    dev = full_resolution(student_out).device
    zero = torch.zeros((), device=dev)
    t: dict[str, torch.Tensor] = {}
    if weights.att:
        t["att"] = attention_distillation_loss_qk(student_aux["attention_qk"], teacher_aux["attention_qk"])
    if weights.feat:
        s_feats = list(student_aux["decoder_features"]) + list(student_aux["transformer_outputs"])
        t_feats = list(teacher_aux["decoder_features"]) + list(teacher_aux["transformer_outputs"])
        t["feat"] = feature_distillation_loss(s_feats, t_feats)
    z_s, z_t = full_resolution(student_out), full_resolution(teacher_out)
    ramp = consistency_ramp(epoch, weights.ramp_fraction * num_epochs)
    if weights.prob:
        t["prob"] = probability_consistency_loss(z_s, z_t, region)
    if weights.lskd:
        t["lskd"] = logit_standardized_kd_loss(z_s, z_t, region, weights.temperature)
    if weights.gram:
        t["gram"] = gram_loss(style_levels(student_aux), style_levels(teacher_aux))
    if weights.adv and discriminator is not None:
        with torch.autocast(device_type=dev.type, enabled=False):
            t["adv"] = generator_loss(discriminator(student_aux["transformer_outputs"][-1].float()))
    t["mstkd"] = weights.att * t.get("att", zero) + weights.feat * t.get("feat", zero)
    t["dmld"] = weights.prob * ramp * t.get("prob", zero) + weights.lskd * t.get("lskd", zero)
    t["gsme"] = weights.gram * t.get("gram", zero) + weights.adv * t.get("adv", zero)
    t["ramp"] = torch.tensor(ramp, device=dev)
    return t
