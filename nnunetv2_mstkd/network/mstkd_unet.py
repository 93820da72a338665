"""The planned nnU-Net with transformer blocks on its lowest-resolution skips (METHOD §3).

:func:`build_mstkd_network` builds whatever encoder-decoder the plans name with
nnU-Net's own ``get_network_from_plans`` and wraps it in :class:`MSTKDUNet`,
which keeps the network's ``encoder`` and ``decoder`` and inserts a
:class:`~nnunetv2_mstkd.network.transformer.TransformerBlock` on each of the K
lowest-resolution encoder outputs before they reach the decoder::

    skips = encoder(x);  skips[i] = block_i(skips[i]) for the K last i;  return decoder(skips)

Every block starts as the identity, so an untrained MSTKD network computes
exactly what the plain planned network computes. ``forward`` returns what an
nnU-Net network returns (logits, or the deep-supervision list highest
resolution first), so checkpoints load in the stock ``nnUNetPredictor``;
attention maps and intermediate features come from :meth:`MSTKDUNet.forward_with_aux`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunetv2_mstkd.network.transformer import TransformerBlock


def token_stride(stage_size: Sequence[int], max_tokens: int = 512) -> tuple[int, ...]:
    """Smallest power-of-two token stride that leaves at most ``max_tokens`` tokens.

    For a stage of ``N`` positions in ``dim`` axes this is the smallest ``s = 2^j`` with
    ``N / s^dim <= max_tokens``. The stride on an axis never exceeds that axis' size
    (a 4-voxel axis is strided by at most 4), so anisotropic stages stay valid; the
    number of tokens is then ``prod(ceil(n_a / s_a))``.

    Args:
        stage_size: Spatial size of the stage's feature map at the planned patch size.
        max_tokens: Largest number of tokens allowed (attention memory grows with its square).

    Returns:
        One stride per axis, e.g. ``(2, 2, 2)`` for a 16³ stage and 512 tokens.

    Raises:
        ValueError: If ``max_tokens`` < 1 or a size is < 1.
    """
    if max_tokens < 1 or min(stage_size) < 1:
        raise ValueError(f"token_stride: need max_tokens >= 1 and positive sizes, got {max_tokens}, {stage_size}.")
    s = 1
    while True:
        stride = tuple(min(s, n) for n in stage_size)
        if math.prod(math.ceil(n / t) for n, t in zip(stage_size, stride)) <= max_tokens:
            return stride
        s *= 2


class MSTKDUNet(nn.Module):
    """An nnU-Net encoder-decoder with residual transformer blocks on its K lowest-resolution skips.

    Args:
        network: The planned network (e.g. ``PlainConvUNet`` or ``ResidualEncoderUNet``); it must
            have ``encoder`` (returning one skip per stage, with ``output_channels``) and
            ``decoder`` (with ``stages``) attributes. Its encoder and decoder are taken over, so the
            state_dict keys stay nnU-Net's plus ``transformers.*``.
        num_transformer_stages: K, the number of lowest-resolution stages that get a block.
        token_strides: One token stride per transformer stage, shallower stage first (see
            :func:`token_stride`); default 1 everywhere.
        num_layers: Transformer layers per block.
        head_dim: Channels per attention head; a stage with ``C`` channels gets
            ``max(1, C // head_dim)`` heads, lowered to the nearest divisor of ``C``.
        mlp_ratio: MLP hidden width as a multiple of the stage's channels.

    Raises:
        ValueError: If ``network`` lacks ``encoder``/``decoder``, or has fewer stages than K.
    """

    def __init__(self, network: nn.Module, num_transformer_stages: int = 2,
                 token_strides: Sequence[int | Sequence[int]] | None = None, num_layers: int = 4,
                 head_dim: int = 32, mlp_ratio: float = 4.0):
        super().__init__()
        channels = _check_network(network, num_transformer_stages)
        k = num_transformer_stages
        token_strides = [1] * k if token_strides is None else list(token_strides)
        if len(token_strides) != k:
            raise ValueError(f"MSTKDUNet: got {len(token_strides)} token strides for {k} transformer stages.")
        dim = convert_conv_op_to_dim(network.encoder.conv_op)
        self.encoder = network.encoder
        self.decoder = network.decoder
        #: Encoder stage index of each transformer block, shallower first (bottleneck last).
        self.transformer_stage_indices = list(range(len(channels) - k, len(channels)))
        self.transformers = nn.ModuleList(
            TransformerBlock(channels[i], dim, num_layers, _num_heads(channels[i], head_dim), mlp_ratio, stride)
            for i, stride in zip(self.transformer_stage_indices, token_strides))
        # Registered once: forward_with_aux reads the decoder's per-stage outputs without
        # re-implementing its forward, and without adding hooks per call (which would break a
        # compiled graph). They record only while forward_with_aux runs.
        self._decoder_record: list | None = None
        for stage in self.decoder.stages:
            stage.register_forward_hook(self._record_decoder_stage)

    def _record_decoder_stage(self, _module, _inputs, output) -> None:
        if self._decoder_record is not None:
            self._decoder_record.append(output)

    @property
    def token_strides(self) -> list[tuple[int, ...]]:
        """Token stride of each transformer block, shallower stage first."""
        return [block.stride for block in self.transformers]

    #: When a list, ``forward`` appends its aux dict to it. Multi-GPU training sets it so the
    #: student's forward can run through the DDP wrapper (which must see the call to all-reduce
    #: gradients) while the trainer still receives attentions and features; ``forward``'s return
    #: value never changes.
    aux_sink: list | None = None
    #: False: :meth:`forward_with_aux` returns no queries and keys (``aux["attention_qk"]`` is empty), so
    #: nothing keeps them alive. Set by trainers whose losses do not read the attention.
    aux_attentions: bool = True

    def forward(self, x: torch.Tensor):
        """Segment ``x`` (B, C_in, *spatial): logits, or the deep-supervision list highest resolution first."""
        if self.aux_sink is not None:
            out, aux = self.forward_with_aux(x)
            self.aux_sink.append(aux)
            return out
        self._decoder_record = None  # a forward_with_aux interrupted by an error left it set
        skips = list(self.encoder(x))
        for i, block in zip(self.transformer_stage_indices, self.transformers):
            skips[i] = block(skips[i])
        return self.decoder(skips)

    def forward_with_aux(self, x: torch.Tensor):
        """Segment ``x`` and also return what the distillation losses need.

        Returns:
            ``(out, aux)``: ``out`` exactly as :meth:`forward`; ``aux`` a dict with

            * ``"attention_qk"``: per transformer stage (shallower first, bottleneck last) the list over
              layers of ``(q, k)``, the queries and keys ``(B, heads, N, d)`` whose
              ``attention_probabilities`` are the layer's maps (the blocks keep the fused kernel;
              the attention term forms the maps itself); empty when :attr:`aux_attentions` is False;
            * ``"transformer_outputs"``: per transformer stage its output feature map ``(B, C, *spatial)``;
            * ``"bottleneck_input"``: the bottleneck's encoder feature map before its transformer block;
            * ``"encoder_features"``: every encoder stage's output before any transformer block, highest
              resolution first;
            * ``"decoder_features"``: every decoder stage's output, highest resolution first (the order of
              the deep-supervision outputs; ``[-1]`` is the first, lowest-resolution decoder stage).
        """
        skips = list(self.encoder(x))
        aux = {"attention_qk": [], "transformer_outputs": [], "bottleneck_input": skips[-1],
               "encoder_features": list(skips), "decoder_features": []}
        for i, block in zip(self.transformer_stage_indices, self.transformers):
            if self.aux_attentions:
                skips[i], qk = block(skips[i], return_qk=True)
                aux["attention_qk"].append(qk)
            else:
                skips[i] = block(skips[i])
            aux["transformer_outputs"].append(skips[i])
        features = []
        self._decoder_record = features
        out = self.decoder(skips)
        self._decoder_record = None
        aux["decoder_features"] = features[::-1]
        return out, aux


def _check_network(network: nn.Module, k: int) -> list[int]:
    """Return the encoder's channels per stage after checking ``network`` can carry K transformer stages."""
    encoder, decoder = getattr(network, "encoder", None), getattr(network, "decoder", None)
    if not all(hasattr(encoder, a) for a in ("output_channels", "strides", "conv_op")) \
            or not hasattr(decoder, "stages"):
        raise ValueError(f"MSTKDUNet needs an encoder-decoder network with `encoder.output_channels`, "
                         f"`encoder.strides`, `encoder.conv_op` and `decoder.stages` (as the U-Nets of "
                         f"dynamic_network_architectures have); {type(network).__name__} has not. Use a plan with "
                         f"PlainConvUNet or ResidualEncoderUNet.")
    channels = list(encoder.output_channels)
    if not 0 <= k <= len(channels):
        raise ValueError(f"MSTKDUNet: num_transformer_stages={k} but the planned {type(network).__name__} has "
                         f"{len(channels)} encoder stages; choose 0..{len(channels)}.")
    return channels


def _num_heads(channels: int, head_dim: int) -> int:
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


def build_mstkd_network(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                        num_input_channels: int, num_output_channels: int, enable_deep_supervision: bool = True,
                        num_transformer_stages: int = 2, num_layers: int = 4, head_dim: int = 32,
                        mlp_ratio: float = 4.0, max_tokens: int = 512) -> MSTKDUNet:
    """Build the planned nnU-Net network and add transformer blocks to its K lowest-resolution stages.

    Same leading arguments as ``nnUNetTrainer.build_network_architecture``, so a trainer can
    return this from its own static ``build_network_architecture``. Each block's token stride is
    :func:`token_stride` of its stage size at the planned patch size (the patch size divided by
    the cumulative pooling strides).

    Args:
        plans_manager: The plans (unused beyond the signature nnU-Net passes).
        configuration_manager: The configuration whose architecture and patch size are used.
        num_input_channels: Input channels (modalities).
        num_output_channels: Segmentation heads (classes or regions).
        enable_deep_supervision: Return the deep-supervision list from ``forward``.
        num_transformer_stages: K, default 2 (the bottleneck and the stage above).
        num_layers: Transformer layers per block, default 4.
        head_dim: Channels per head, default 32.
        mlp_ratio: MLP ratio, default 4.
        max_tokens: Most tokens per block, default 512.

    Returns:
        The :class:`MSTKDUNet`; untrained, it computes exactly what the plain planned network computes.

    Raises:
        ValueError: If the planned architecture is not an encoder-decoder or has fewer stages than K.
    """
    network = get_network_from_plans(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision)
    _check_network(network, num_transformer_stages)
    size = list(configuration_manager.patch_size)
    stage_sizes = []
    for stride in network.encoder.strides:
        size = [math.ceil(n / s) for n, s in zip(size, stride)]
        stage_sizes.append(size)
    token_strides = [token_stride(s, max_tokens) for s in stage_sizes[len(stage_sizes) - num_transformer_stages:]]
    return MSTKDUNet(network, num_transformer_stages, token_strides, num_layers, head_dim, mlp_ratio)
