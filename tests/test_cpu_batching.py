"""Batch-1 CPU calls run as a batch of two give the batch-1 result."""
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunetv2_mstkd.network.cpu_batching import pair_cpu_batches


def small_unet(deep_supervision: bool) -> nn.Module:
    torch.manual_seed(0)
    return PlainConvUNet(4, 3, (8, 16, 32), nn.Conv3d, 3, (1, 2, 2), 2, 3, 2, conv_bias=True,
                         norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True},
                         deep_supervision=deep_supervision).eval()


class BatchSizeProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.shape[0])
        return x * 2


def test_paired_output_equals_batch_one_output():
    net = small_unet(False)
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        plain = net(x)
        keys = list(net.state_dict())
        handles = pair_cpu_batches(net)
        paired = net(x)
    assert paired.shape == plain.shape == (1, 3, 16, 16, 16)
    torch.testing.assert_close(paired, plain, rtol=1e-4, atol=1e-4)
    assert list(net.state_dict()) == keys  # nnU-Net reloads weights by these names
    for h in handles:
        h.remove()


def test_deep_supervision_list_and_larger_batches_and_removal():
    net = small_unet(True)
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        plain = net(x)
        handles = pair_cpu_batches(net)
        paired = net(x)
        assert [p.shape for p in paired] == [p.shape for p in plain]
        for a, b in zip(paired, plain):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    probe = BatchSizeProbe()
    handles = pair_cpu_batches(probe)
    assert probe(torch.ones(1, 2)).shape == (1, 2) and probe(torch.ones(3, 2)).shape == (3, 2)
    assert probe.seen == [2, 3]  # doubled only for batch 1
    for h in handles:
        h.remove()
    probe(torch.ones(1, 2))
    assert probe.seen[-1] == 1
