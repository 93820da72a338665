"""Trainer mix-in that builds the transformer-augmented network from the plans (METHOD §3)."""
from __future__ import annotations

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_mstkd.network.mstkd_unet import build_mstkd_network


class MSTKDNetworkMixin:
    """Use :func:`build_mstkd_network` as the trainer's network.

    ``build_network_architecture`` keeps nnU-Net's signature, so ``nnUNetv2_train`` and the
    stock ``nnUNetPredictor`` build the same network. It is a classmethod (called exactly like
    nnU-Net's static method) so that subclasses can change the transformer through class
    attributes.

    Class attributes:
        transformer_stages: K lowest-resolution encoder stages with a transformer block (2).
        transformer_layers: Layers per block (4).
        transformer_head_dim: Channels per attention head (32).
        transformer_mlp_ratio: MLP width ratio (4).
        transformer_max_tokens: Most tokens per block before strided patch embedding (512).
    """

    transformer_stages: int = 2
    transformer_layers: int = 4
    transformer_head_dim: int = 32
    transformer_mlp_ratio: float = 4.0
    transformer_max_tokens: int = 512

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return build_mstkd_network(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision, num_transformer_stages=cls.transformer_stages,
                                   num_layers=cls.transformer_layers, head_dim=cls.transformer_head_dim,
                                   mlp_ratio=cls.transformer_mlp_ratio, max_tokens=cls.transformer_max_tokens)
