"""Style discriminator of global style matching (GSME, METHOD §4.3) and its update step.

``D`` sees a transformer-stage feature map and says whether it came from the
teacher (logit > 0) or the student. It has its own persistent Adam optimiser,
saved and restored with the trainer's checkpoint.
"""
from __future__ import annotations

import torch
from torch import nn

from nnunetv2_mstkd.losses.adversarial import discriminator_loss


class StyleDiscriminator(nn.Module):
    """Small CNN giving one real/fake logit per sample.

    ``num_layers`` blocks of ``Conv(kernel 4, stride 2, padding) + LeakyReLU(0.2)``
    with ``base_channels · 2^i`` output channels in block ``i``, then global
    average pooling and a linear layer to one logit.

    A kernel-4, stride-2 convolution maps a side of ``n`` positions to
    ``floor((n + 2·padding − 4) / 2) + 1``. With the default ``padding=2`` that is
    ``floor(n / 2) + 1 ≥ 1``, so **any map of at least 1 position per axis** works
    (2³ → 2³ → 2³, 4³ → 3³ → 2³, 8³ → 5³ → 3³) for any ``num_layers``. With
    ``padding=1`` (the pix2pix choice) each side must be at least ``2^num_layers``.

    Args:
        in_channels: Channels of the feature map it judges.
        dim: 2 or 3 spatial dimensions.
        base_channels: Channels of the first block; doubled in each further block.
        num_layers: Number of strided convolution blocks.
        padding: Zero padding of each convolution.

    Raises:
        ValueError: For ``dim`` other than 2 or 3, or non-positive sizes.
    """

    def __init__(self, in_channels: int, dim: int, base_channels: int = 32, num_layers: int = 2,
                 padding: int = 2) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"StyleDiscriminator dim must be 2 or 3, got {dim}.")
        if min(in_channels, base_channels, num_layers) < 1 or padding < 0:
            raise ValueError(f"in_channels, base_channels and num_layers must be >= 1 and padding >= 0, got "
                             f"{in_channels}, {base_channels}, {num_layers}, {padding}.")
        conv = nn.Conv3d if dim == 3 else nn.Conv2d
        self.in_channels, self.dim, self.padding, self.num_layers = in_channels, dim, padding, num_layers
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(num_layers):
            out = base_channels * 2**i
            layers += [conv(channels, out, kernel_size=4, stride=2, padding=padding), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, 1)

    def min_input_size(self) -> int:
        """Smallest side length (per spatial axis) the network accepts."""
        size = 1
        for _ in range(self.num_layers):
            # invert n_out = floor((n + 2p - 4) / 2) + 1 >= target for the smallest n >= 1
            size = max(1, 2 * size + 2 - 2 * self.padding)
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B,)`` logits for a feature map ``(B, in_channels, *spatial)``.

        Raises:
            ValueError: If the number of axes, channels or a side length does not fit.
        """
        if x.ndim != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"StyleDiscriminator expects (B, {self.in_channels}, *{self.dim} spatial axes), "
                             f"got shape {tuple(x.shape)}.")
        if min(x.shape[2:]) < self.min_input_size():
            raise ValueError(f"Feature map {tuple(x.shape)} is too small: every spatial side must be >= "
                             f"{self.min_input_size()} for {self.num_layers} layers with padding {self.padding}.")
        h = self.features(x)
        return self.classifier(h.flatten(2).mean(-1)).squeeze(1)


def make_discriminator_optimizer(discriminator: nn.Module, lr: float = 1e-4,
                                 betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.Adam:
    """The discriminator's own Adam optimiser (METHOD §4.3: lr 1e-4, betas (0.9, 0.99)).

    Create it once and keep it for the whole training; save and load its
    ``state_dict`` with the checkpoint.
    """
    return torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer, teacher_feat: torch.Tensor,
                       student_feat: torch.Tensor, grad_scaler: torch.amp.GradScaler | None = None,
                       sync_gradients: bool = False) -> float:
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
        The discriminator loss before the update, as a Python float.

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
    return loss.item()


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
