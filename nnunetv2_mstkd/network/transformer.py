"""A residual transformer block over a convolutional feature map (METHOD §3).

The block treats every position of a ``(B, C, *spatial)`` feature map as a token
of width ``C`` and runs ``L`` pre-norm transformer layers over them (Vaswani et
al., NeurIPS 2017; pre-norm as in ViT, Dosovitskiy et al., ICLR 2021)::

    t = embed(x) + PE(embed(x))
    for l in 1..L:   t = t + MHSA(LN(t));   t = t + MLP(LN(t))
    out = x + proj(LN(t))

``proj`` is zero-initialised, so an untrained block returns its input exactly
and a network built with these blocks starts as the plain nnU-Net.

Positional encoding: a conditional positional encoding (CPE; Chu et al.,
"Conditional Positional Encodings for Vision Transformers", ICLR 2023), i.e. a
3-wide depthwise convolution on the token grid added residually. It is defined
for any grid size (sliding-window patches, larger inputs) without interpolating
a learned table, and the zero padding at the borders gives absolute position
cues.

Stages with too many positions for ``N x N`` attention form their tokens with a
strided patch embedding (a convolution with kernel = stride = ``s``); the output
projection is then a transposed convolution with the same kernel and stride,
which both projects and upsamples back to the input size.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op, get_matching_convtransp
from torch import nn


def attention_probabilities(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Softmax attention probabilities ``softmax(q kᵀ / sqrt(d))``, always in float32.

    Autocast is disabled inside so the softmax never runs in half precision.

    Args:
        q: Queries, shape ``(B, heads, N, d)``.
        k: Keys, shape ``(B, heads, N, d)``.

    Returns:
        Float32 tensor ``(B, heads, N, N)`` whose rows sum to 1.
    """
    with torch.autocast(device_type=q.device.type, enabled=False):
        # scaling q (N x d) instead of the scores (N x N) saves a pass over the largest tensor
        scores = torch.matmul(q.float() * (1 / math.sqrt(q.shape[-1])), k.float().transpose(-2, -1))
        return torch.softmax(scores, dim=-1)


class TransformerLayer(nn.Module):
    """One pre-norm layer: ``t + MHSA(LN(t))`` then ``t + MLP(LN(t))`` with a GELU MLP.

    Args:
        width: Token width ``C``.
        num_heads: Attention heads; must divide ``width``.
        mlp_ratio: Hidden width of the MLP as a multiple of ``width``.
    """

    def __init__(self, width: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.attn_proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(round(width * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, t: torch.Tensor, return_attention: bool = False, return_qk: bool = False):
        """Apply the layer to tokens ``t`` of shape ``(B, N, C)``.

        Returns:
            ``(tokens, attention)``; ``attention`` is the float32 ``(B, heads, N, N)``
            probability tensor when ``return_attention`` is set; else the pair ``(q, k)`` of
            ``(B, heads, N, C / heads)`` queries and keys when ``return_qk`` is set (the maps are
            ``attention_probabilities(q, k)``), else None. Without ``return_attention`` the fused
            ``scaled_dot_product_attention`` kernel is used.
        """
        b, n, c = t.shape
        qkv = self.qkv(self.norm1(t)).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attention = None
        if return_attention:
            attention = attention_probabilities(q, k)
            with torch.autocast(device_type=v.device.type, enabled=False):
                o = torch.matmul(attention, v.float()).to(v.dtype)
        else:
            o = F.scaled_dot_product_attention(q, k, v)
            if return_qk:
                attention = (q, k)
        t = t + self.attn_proj(o.transpose(1, 2).reshape(b, n, c))
        t = t + self.mlp(self.norm2(t))
        return t, attention


class TransformerBlock(nn.Module):
    """Residual stack of pre-norm transformer layers over a 2D or 3D feature map.

    Args:
        channels: Channels ``C`` of the feature map; also the token width.
        dim: Spatial dimensionality, 2 or 3.
        num_layers: Number of transformer layers ``L``.
        num_heads: Attention heads; default ``max(1, channels // 32)``. Must divide ``channels``.
        mlp_ratio: MLP hidden width as a multiple of ``channels``.
        stride: Token stride, an int or one int per axis. 1 makes every position a
            token; ``s > 1`` embeds non-overlapping ``s``-wide patches (inputs are
            zero-padded up to a multiple of ``s``) and upsamples the output back.

    Raises:
        ValueError: For a ``dim`` other than 2 or 3, ``num_heads`` that does not divide
            ``channels``, or a stride or layer count below 1.
    """

    def __init__(self, channels: int, dim: int, num_layers: int = 4, num_heads: int | None = None,
                 mlp_ratio: float = 4.0, stride: int | Sequence[int] = 1):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"TransformerBlock: dim must be 2 or 3 (the conv dimensionality), got {dim}.")
        num_heads = max(1, channels // 32) if num_heads is None else num_heads
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"TransformerBlock: num_heads={num_heads} must be >= 1 and divide channels={channels}.")
        if num_layers < 1:
            raise ValueError(f"TransformerBlock: num_layers must be >= 1, got {num_layers}.")
        self.stride = (stride,) * dim if isinstance(stride, int) else tuple(int(s) for s in stride)
        if len(self.stride) != dim or min(self.stride) < 1:
            raise ValueError(f"TransformerBlock: stride must be a positive int or {dim} positive ints, got {stride}.")
        self.channels, self.dim, self.num_heads = channels, dim, num_heads
        conv_op = convert_dim_to_conv_op(dim)
        strided = any(s > 1 for s in self.stride)
        # At stride 1 the feature vectors are the tokens already; an embedding conv would only add parameters.
        self.embed = conv_op(channels, channels, self.stride, self.stride) if strided else nn.Identity()
        self.pos = conv_op(channels, channels, 3, 1, 1, groups=channels)
        self.layers = nn.ModuleList(TransformerLayer(channels, num_heads, mlp_ratio) for _ in range(num_layers))
        self.norm = nn.LayerNorm(channels)
        if strided:
            self.proj = get_matching_convtransp(conv_op)(channels, channels, self.stride, self.stride)
        else:
            self.proj = conv_op(channels, channels, 1)
        self.apply(_init_linear)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, heads={self.num_heads}, layers={len(self.layers)}, stride={self.stride}"

    def forward(self, x: torch.Tensor, return_attention: bool = False, return_qk: bool = False):
        """Apply the block to ``x`` of shape ``(B, C, *spatial)``.

        Args:
            x: Feature map with ``channels`` channels and ``dim`` spatial axes.
            return_attention: Also return every layer's attention probabilities,
                computed with an explicit float32 softmax instead of the fused kernel.
            return_qk: Also return every layer's queries and keys (the fused kernel is kept);
                what the distillation term needs to form the maps itself.

        Returns:
            ``y`` with the shape of ``x``; or ``(y, [A_1, ..., A_L])`` with each ``A_l``
            a float32 ``(B, heads, N, N)`` tensor, ``N`` the number of tokens; or, with
            ``return_qk``, ``(y, [(q_1, k_1), ..., (q_L, k_L)])``.
        """
        if x.ndim != self.dim + 2 or x.shape[1] != self.channels:
            raise ValueError(f"TransformerBlock expects (B, {self.channels}, {self.dim} spatial axes), "
                             f"got shape {tuple(x.shape)}.")
        spatial = x.shape[2:]
        pad = [(-n) % s for n, s in zip(spatial, self.stride)]
        t = x
        if any(pad):
            # F.pad lists the last axis first.
            t = F.pad(t, [p for q in reversed(pad) for p in (0, q)])
        t = self.embed(t)
        t = t + self.pos(t)
        grid = t.shape[2:]
        t = t.flatten(2).transpose(1, 2)
        attentions = []
        for layer in self.layers:
            t, attention = layer(t, return_attention, return_qk)
            attentions.append(attention)
        t = self.norm(t).transpose(1, 2).reshape(x.shape[0], self.channels, *grid)
        y = self.proj(t)
        if any(pad):
            y = y[(slice(None), slice(None), *(slice(0, n) for n in spatial))]
        y = x + y
        return (y, attentions) if return_attention or return_qk else y


def _init_linear(module: nn.Module) -> None:
    # ViT's initialisation; convolutions keep PyTorch's default.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
