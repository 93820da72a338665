"""Tests of the transformer block and the MSTKD wrapper around nnU-Net's planned networks."""
import math

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from nnunetv2_mstkd.network import MSTKDUNet, TransformerBlock, build_mstkd_network, token_stride
from nnunetv2_mstkd.network.transformer import attention_probabilities

PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def make_plans(arch: str = PLAIN, dim: int = 3, patch=None, features=(8, 16, 32)) -> PlansManager:
    """A minimal nnU-Net plans dict with one configuration, "cfg", of ``len(features)`` stages."""
    n = len(features)
    patch = patch or [16] * dim
    conv = f"torch.nn.modules.conv.Conv{dim}d"
    norm = f"torch.nn.modules.instancenorm.InstanceNorm{dim}d"
    arch_kwargs = {
        "n_stages": n, "features_per_stage": list(features), "conv_op": conv,
        "kernel_sizes": [[3] * dim] * n, "strides": [[1] * dim] + [[2] * dim] * (n - 1),
        "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True, "norm_op": norm,
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    }
    arch_kwargs["n_conv_per_stage" if arch == PLAIN else "n_blocks_per_stage"] = [1] * n
    cfg = {"patch_size": list(patch), "architecture": {
        "network_class_name": arch, "arch_kwargs": arch_kwargs,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}
    return PlansManager({"configurations": {"cfg": cfg}})


def build(plans: PlansManager, ds: bool = True, **kwargs) -> MSTKDUNet:
    torch.manual_seed(0)
    return build_mstkd_network(plans, plans.get_configuration("cfg"), 4, 3, enable_deep_supervision=ds, **kwargs)


def plain_twin(plans: PlansManager, net: MSTKDUNet, ds: bool) -> nn.Module:
    """The plain planned network carrying ``net``'s encoder and decoder weights."""
    cm = plans.get_configuration("cfg")
    plain = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                   cm.network_arch_init_kwargs_req_import, 4, 3, deep_supervision=ds)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("transformers.")})
    return plain


def randomise_projections(net: nn.Module, seed: int = 1) -> None:
    """Give every zero-initialised output projection random weights, so the blocks do something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, TransformerBlock):
                m.proj.weight.copy_(torch.randn(m.proj.weight.shape, generator=g) * 0.1)
                m.proj.bias.copy_(torch.randn(m.proj.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("arch,dim", [(PLAIN, 3), (PLAIN, 2), (RESENC, 3)])
@pytest.mark.parametrize("ds", [True, False])
def test_untrained_network_equals_plain_nnunet(arch, dim, ds):
    plans = make_plans(arch, dim)
    net = build(plans, ds).eval()
    plain = plain_twin(plans, net, ds).eval()
    x = torch.randn(2, 4, *[16] * dim)
    with torch.no_grad():
        out, ref = net(x), plain(x)
    if ds:
        assert isinstance(out, list) and len(out) == len(ref) == 2
        assert [o.shape for o in out] == [(2, 3, *[16] * dim), (2, 3, *[8] * dim)]
    else:
        out, ref = [out], [ref]
        assert out[0].shape == (2, 3, *[16] * dim)
    for o, r in zip(out, ref):
        assert torch.equal(o, r)
    # The blocks are really there and would change the output once trained.
    assert len(net.transformers) == 2
    randomise_projections(net)
    with torch.no_grad():
        changed = net(x)
    assert not torch.allclose(changed[0] if ds else changed, out[0])


def test_attention_shapes_rows_and_aux_contents():
    plans = make_plans(PLAIN, 3, patch=[32] * 3, features=(16, 32, 64))
    net = build(plans).eval()
    x = torch.randn(2, 4, 32, 32, 32)
    with torch.no_grad():
        out, aux = net.forward_with_aux(x)
        plain_out = net(x)
    for o, p in zip(out, plain_out):
        assert torch.equal(o, p)
    # Stage 1 is 16³ = 4096 positions -> stride 2 -> 512 tokens, 32 channels -> 1 head.
    # Stage 2 (bottleneck) is 8³ = 512 positions -> stride 1 -> 512 tokens, 64 channels -> 2 heads.
    assert net.token_strides == [(2, 2, 2), (1, 1, 1)]
    assert [len(a) for a in aux["attention_qk"]] == [4, 4]
    for layers, heads, width in zip(aux["attention_qk"], (1, 2), (32, 64)):
        for q, k in layers:
            assert q.shape == k.shape == (2, heads, 512, width // heads)
            a = attention_probabilities(q, k)
            assert a.shape == (2, heads, 512, 512) and a.dtype == torch.float32
            torch.testing.assert_close(a.sum(-1), torch.ones(2, heads, 512))
            assert a.min() >= 0
    assert [t.shape for t in aux["transformer_outputs"]] == [(2, 32, 16, 16, 16), (2, 64, 8, 8, 8)]
    assert aux["bottleneck_input"].shape == (2, 64, 8, 8, 8)
    # Untrained blocks are the identity, so the bottleneck passes through unchanged.
    assert torch.equal(aux["transformer_outputs"][-1], aux["bottleneck_input"])
    assert [f.shape[1] for f in aux["encoder_features"]] == [16, 32, 64]
    assert aux["encoder_features"][-1] is aux["bottleneck_input"]
    assert [f.shape for f in aux["decoder_features"]] == [(2, 16, 32, 32, 32), (2, 32, 16, 16, 16)]
    assert [f.shape[2:] for f in aux["decoder_features"]] == [o.shape[2:] for o in out]
    # the decoder hooks record only inside forward_with_aux: a plain forward keeps nothing
    assert net._decoder_record is None
    net(x)
    assert net._decoder_record is None


def test_without_aux_attentions_the_aux_forward_returns_no_maps_and_the_same_features():
    plans = make_plans(PLAIN, 3, patch=[32] * 3, features=(16, 32, 64))
    net = build(plans).eval()
    randomise_projections(net)
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        out, aux = net.forward_with_aux(x)
        net.aux_attentions = False
        fused_out, fused_aux = net.forward_with_aux(x)
    assert len(aux["attention_qk"]) == 2 and fused_aux["attention_qk"] == []
    for key in ("transformer_outputs", "decoder_features"):
        for a, b in zip(aux[key], fused_aux[key], strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for a, b in zip(out, fused_out, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aux_attentions", [True, False])
def test_aux_forward_compiles_to_one_graph_without_recompiling(aux_attentions):
    """fullgraph=True: no graph break; a counting backend sees one compilation for three calls."""
    plans = make_plans(PLAIN, 3, patch=[32] * 3, features=(16, 32, 64))
    net = build(plans)
    randomise_projections(net)
    net.aux_attentions = aux_attentions
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(net.forward_with_aux, backend=counting_backend, fullgraph=True)
    x = [torch.randn(2, 4, 32, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    results = [compiled(xi) for xi in x]
    assert len(graphs) == 1
    out, aux = net.forward_with_aux(x[2])
    for a, b in zip(results[2][0], out, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(results[2][1]["decoder_features"], aux["decoder_features"], strict=True):
        torch.testing.assert_close(a, b)
    assert len(results[2][1]["attention_qk"]) == (2 if aux_attentions else 0)


def test_decoder_features_are_the_stage_outputs_feeding_the_seg_layers():
    plans = make_plans(PLAIN, 2, features=(8, 16, 32, 32))
    net = build(plans).eval()
    randomise_projections(net)
    with torch.no_grad():
        out, aux = net.forward_with_aux(torch.randn(1, 4, 16, 16))
        feats = aux["decoder_features"]
        assert len(feats) == len(out) == 3
        for o, f, seg in zip(out, feats, reversed(net.decoder.seg_layers)):
            torch.testing.assert_close(seg(f), o)


@pytest.mark.parametrize("stride", [1, 2, (1, 2, 2)])
def test_fused_and_explicit_attention_paths_agree(stride):
    torch.manual_seed(0)
    block = TransformerBlock(16, 3, num_layers=2, num_heads=2, stride=stride).eval()
    randomise_projections(block)
    x = torch.randn(2, 16, 6, 8, 8)  # 6 is not a multiple of 4, 8 is: padding and no padding
    with torch.no_grad():
        fused = block(x)
        explicit, attentions = block(x, return_attention=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    assert fused.shape == x.shape
    n = math.prod(math.ceil(s / t) for s, t in zip(x.shape[2:], block.stride))
    assert [a.shape for a in attentions] == [(2, 2, n, n)] * 2
    assert not torch.allclose(fused, x)
    with torch.no_grad():
        with_qk, qk = block(x, return_qk=True)
    assert torch.equal(with_qk, fused)  # the fused kernel is kept
    for (q, k), a in zip(qk, attentions, strict=True):
        torch.testing.assert_close(attention_probabilities(q, k), a)


def test_explicit_attention_is_float32_under_autocast():
    block = TransformerBlock(32, 2, num_layers=1)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        y, (a,) = block(torch.randn(1, 32, 4, 4), return_attention=True)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a.sum(-1), torch.ones(1, 1, 16))


def test_untrained_block_is_identity_with_stride_and_odd_size():
    block = TransformerBlock(8, 3, stride=2)
    x = torch.randn(1, 8, 5, 6, 7)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("size,max_tokens,expected", [
    ((16, 16, 16), 512, (2, 2, 2)),    # 4096 / 2³ = 512
    ((8, 8, 8), 512, (1, 1, 1)),       # already 512
    ((4, 4, 4), 512, (1, 1, 1)),
    ((32, 32, 32), 512, (4, 4, 4)),    # 32768 / 4³ = 512; stride 2 leaves 4096
    ((64, 64), 512, (4, 4)),           # 4096 / 2² = 1024 > 512, / 4² = 256
    ((2, 32, 32), 512, (2, 2, 2)),     # 2048 / 8 = 256
    ((1, 64, 64), 512, (1, 4, 4)),     # the size-1 axis is never strided: 1 * 16 * 16 = 256
    ((5, 5, 5), 8, (4, 4, 4)),         # ceil(5 / 4)³ = 8
])
def test_token_stride(size, max_tokens, expected):
    assert token_stride(size, max_tokens) == expected


def test_token_stride_rejects_bad_budget():
    with pytest.raises(ValueError, match="max_tokens"):
        token_stride((8, 8), 0)


def test_default_brats_plan_needs_no_stride():
    # nnU-Net's 6-stage 3d_fullres BraTS plan at 128³: the two lowest stages are 8³ and 4³.
    plans = make_plans(PLAIN, 3, patch=[128] * 3, features=(32, 64, 128, 256, 320, 320))
    net = build(plans)
    assert net.token_strides == [(1, 1, 1), (1, 1, 1)]
    assert [b.num_heads for b in net.transformers] == [10, 10]


def test_state_dict_round_trip_and_larger_input():
    plans = make_plans(RESENC, 3)
    net = build(plans, ds=False)
    randomise_projections(net)
    torch.manual_seed(123)
    other = build_mstkd_network(plans, plans.get_configuration("cfg"), 4, 3, enable_deep_supervision=False)
    x = torch.randn(1, 4, 24, 16, 32)  # not the patch size, but divisible by the pooling
    with torch.no_grad():
        assert not torch.allclose(other.eval()(x), net.eval()(x))
        other.load_state_dict(net.state_dict())
        torch.testing.assert_close(other(x), net(x), rtol=0, atol=0)
    assert other(x).shape == (1, 3, 24, 16, 32)
    assert {k.split(".")[0] for k in net.state_dict()} == {"encoder", "decoder", "transformers"}


def test_gradients_reach_transformer_parameters():
    net = build(make_plans(PLAIN, 3), ds=False)
    x = torch.randn(1, 4, 16, 16, 16)
    net(x).square().mean().backward()
    # At initialisation only the zero output projections learn; everything behind them gets zero gradient.
    for block in net.transformers:
        assert block.proj.weight.grad.abs().sum() > 0
        assert block.layers[0].qkv.weight.grad.abs().sum() == 0
    net.zero_grad()
    randomise_projections(net)
    net(x).square().mean().backward()
    for name, p in net.transformers.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_too_many_transformer_stages_is_refused():
    plans = make_plans(PLAIN, 3)
    with pytest.raises(ValueError, match="num_transformer_stages=4 .* 3 encoder stages"):
        build(plans, num_transformer_stages=4)
    assert len(build(plans, num_transformer_stages=3).transformers) == 3


def test_network_without_encoder_decoder_is_refused():
    with pytest.raises(ValueError, match="Sequential has not"):
        MSTKDUNet(nn.Sequential(nn.Conv3d(4, 3, 1)))


@pytest.mark.parametrize("kwargs,match", [
    ({"dim": 1}, "dim must be 2 or 3"),
    ({"num_heads": 3}, "num_heads=3 must be >= 1 and divide channels=16"),
    ({"stride": (2, 2)}, "stride must be"),
    ({"num_layers": 0}, "num_layers"),
])
def test_transformer_block_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerBlock(**{"channels": 16, "dim": 3, **kwargs})


def test_transformer_block_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"expects \(B, 16, 3 spatial axes\), got shape \(1, 8, 4, 4, 4\)"):
        TransformerBlock(16, 3)(torch.randn(1, 8, 4, 4, 4))
