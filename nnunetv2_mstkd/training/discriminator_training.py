"""Training the style discriminator of GSME (METHOD §4.3): its optimiser, update step and multi-GPU sync.

The discriminator (:class:`~nnunetv2_mstkd.network.discriminator.StyleDiscriminator`) has
its own persistent Adam optimiser, saved and restored with the trainer's checkpoint. Under
DDP every rank holds a copy: rank 0's weights are broadcast at initialisation and after
loading, and gradients are averaged across ranks before each step.
"""
from __future__ import annotations

import torch
from torch import nn

from nnunetv2_mstkd.losses.adversarial import discriminator_loss


def make_discriminator_optimizer(discriminator: nn.Module, lr: float = 1e-4,
                                 betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.Adam:
    """The discriminator's own Adam optimiser (METHOD §4.3: lr 1e-4, betas (0.9, 0.99)).

    Create it once and keep it for the whole training; save and load its
    ``state_dict`` with the checkpoint.
    """
    return torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer, teacher_feat: torch.Tensor,
                       student_feat: torch.Tensor, grad_scaler: torch.amp.GradScaler | None = None,
                       sync_gradients: bool = False) -> torch.Tensor:
    """One discriminator update on teacher (real) versus student (fake) features.

    Zeroes ``D``'s gradients (also those left by the student's generator loss),
    computes :func:`~nnunetv2_mstkd.losses.adversarial.discriminator_loss` on
    ``D(f_T)`` and ``D(f_S)`` with both feature maps detached and cast to
    float32 under disabled autocast, back-propagates and steps.

    Args:
        discriminator: The style discriminator (float32 parameters).
        optimizer: Its persistent optimiser, from :func:`make_discriminator_optimizer`.
        teacher_feat: Teacher feature map ``(B, C, *spatial)``.
        student_feat: Student feature map of the same shape (detached here).
        grad_scaler: Optional ``GradScaler`` used for backward and step. The loss
            is float32, so none is needed; a shared scaler would be updated twice per iteration.
        sync_gradients: Average ``D``'s gradients over the ranks of an initialised process group
            before stepping (multi-GPU training, where every rank holds its own ``D``).

    Returns:
        The discriminator loss before the update: a detached float32 scalar tensor on the features'
        device (not a Python float, so that the training step does not wait for the device here).

    Raises:
        ValueError: If the feature shapes differ or do not fit the discriminator.
    """
    if teacher_feat.shape != student_feat.shape:
        raise ValueError(f"Teacher and student features for the discriminator must have the same shape, got "
                         f"{tuple(teacher_feat.shape)} and {tuple(student_feat.shape)}.")
    discriminator.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=teacher_feat.device.type, enabled=False):
        # one batched forward: D has no batch statistics, so this equals two separate calls
        both = torch.cat([teacher_feat.detach().float(), student_feat.detach().float()])
        real, fake = discriminator(both).chunk(2)
        loss = discriminator_loss(real, fake)
    if grad_scaler is None:
        loss.backward()
        if sync_gradients:
            _all_reduce_mean(discriminator)
        optimizer.step()
    else:
        grad_scaler.scale(loss).backward()
        if sync_gradients:
            _all_reduce_mean(discriminator)
        grad_scaler.step(optimizer)
        grad_scaler.update()
    return loss.detach()


def _all_reduce_mean(module: nn.Module) -> None:
    """Average the gradients of ``module`` over all ranks, so every rank's copy takes the same step."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers of ``module`` to every rank of the process group.

    Multi-GPU training builds one discriminator per rank, each with its own random
    initialisation; without this, the ranks would train different discriminators. Does
    nothing without an initialised process group.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=src)
