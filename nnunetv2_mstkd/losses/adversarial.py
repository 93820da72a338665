"""Adversarial style matching, the second half of GSME (METHOD §4.3).

The discriminator ``D`` (:class:`nnunetv2_mstkd.network.discriminator.StyleDiscriminator`)
learns to tell teacher features (label 1) from student features (label 0); the
student is trained to make ``D`` call its features the teacher's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_mstkd.losses._checks import check_tensor


def _check_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(logits, name)
    if logits.ndim > 2 or (logits.ndim == 2 and logits.shape[1] != 1):
        raise ValueError(f"{name} must hold one logit per sample, shape (B,) or (B, 1), got {tuple(logits.shape)}.")
    return logits.float()


def discriminator_loss(d_teacher_logits: torch.Tensor, d_student_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the discriminator: teacher features are real, student features fake.

    ``L_D = mean_b BCE(D(f_T), 1) + mean_b BCE(D(f_S), 0)``, with
    ``BCE(x, 1) = −log σ(x)`` and ``BCE(x, 0) = −log(1 − σ(x))`` on logits ``x``.

    The caller must compute ``d_student_logits`` from **detached** student
    features (``D(f_S.detach())``), so this loss trains ``D`` only and never
    pushes the student. Computed in float32.

    Reference: Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014;
    Zhu et al., MICCAI 2025 (arXiv 2507.22626), global style matching.

    Args:
        d_teacher_logits: ``D``'s logits on teacher features, ``(B,)`` or ``(B, 1)``.
        d_student_logits: ``D``'s logits on detached student features, same form.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If an argument is not a tensor.
        ValueError: If an argument is empty or holds more than one logit per sample.
    """
    real = _check_logits(d_teacher_logits, "d_teacher_logits")
    fake = _check_logits(d_student_logits, "d_student_logits")
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(d_student_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating adversarial loss of the student: ``mean_b BCE(D(f_S), 1) = −mean_b log σ(D(f_S))``.

    Gradients flow through ``D`` into the student features. They also reach
    ``D``'s parameters; :func:`~nnunetv2_mstkd.network.discriminator.discriminator_step`
    zeroes those before every update, or freeze ``D`` with ``requires_grad_(False)``
    while computing this term. Computed in float32.

    Reference: Goodfellow et al., NeurIPS 2014 (non-saturating generator loss);
    Zhu et al., MICCAI 2025 (arXiv 2507.22626).

    Args:
        d_student_logits: ``D``'s logits on the (not detached) student features, ``(B,)`` or ``(B, 1)``.

    Returns:
        A float32 scalar tensor.

    Raises:
        TypeError: If the argument is not a tensor.
        ValueError: If it is empty or holds more than one logit per sample.
    """
    fake = _check_logits(d_student_logits, "d_student_logits")
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


class DiscriminatorLoss(nn.Module):
    """Module form of :func:`discriminator_loss`."""

    def forward(self, d_teacher_logits: torch.Tensor, d_student_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`discriminator_loss`."""
        return discriminator_loss(d_teacher_logits, d_student_logits)


class GeneratorLoss(nn.Module):
    """Module form of :func:`generator_loss`."""

    def forward(self, d_student_logits: torch.Tensor) -> torch.Tensor:
        """See :func:`generator_loss`."""
        return generator_loss(d_student_logits)
