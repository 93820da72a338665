"""Style discriminator of global style matching (GSME, METHOD §4.3).

``D`` sees a transformer-stage feature map and says whether it came from the
teacher (logit > 0) or the student. Its optimiser and update step are in
:mod:`nnunetv2_mstkd.training.discriminator_training`.
"""
from __future__ import annotations

import torch
from torch import nn


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
