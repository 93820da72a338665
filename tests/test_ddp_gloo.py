"""Multi-process pieces of multi-GPU training, run with a 2-process ``gloo`` group on the CPU."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunetv2_mstkd.network.discriminator import StyleDiscriminator
from nnunetv2_mstkd.training.discriminator_training import (
    broadcast_module,
    discriminator_step,
    make_discriminator_optimizer,
)
from nnunetv2_mstkd.training.student import forward_with_aux_through

WORLD = 2


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # every rank initialises its own discriminator differently
        disc = StyleDiscriminator(8, 3, base_channels=4)
        torch.save({k: v.clone() for k, v in disc.state_dict().items()}, os.path.join(out_dir, f"init_{rank}.pt"))
        broadcast_module(disc)
        torch.save({k: v.clone() for k, v in disc.state_dict().items()}, os.path.join(out_dir, f"bcast_{rank}.pt"))
        # each rank sees its own features; the averaged gradient must keep the copies equal
        optimizer = make_discriminator_optimizer(disc)
        teacher, student = torch.randn(2, 8, 4, 4, 4), torch.randn(2, 8, 4, 4, 4)
        discriminator_step(disc, optimizer, teacher, student, sync_gradients=True)
        torch.save({k: v.clone() for k, v in disc.state_dict().items()}, os.path.join(out_dir, f"step_{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _student_loss(out, aux) -> torch.Tensor:
    # the output (deep-supervision list) and an aux-only term: queries and keys reach the loss only through aux
    return sum(o.square().mean() for o in out) + sum(q.square().mean() + k.square().mean()
                                                     for s in aux["attention_qk"] for q, k in s)


def _aux_worker(rank: int, init_file: str, out_dir: str) -> None:
    from test_network import build, make_plans

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        net = build(make_plans())  # seeded: the same weights on every rank
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        x = torch.load(os.path.join(out_dir, f"x_{rank}.pt"))
        out, aux = forward_with_aux_through(ddp, x)
        _student_loss(out, aux).backward()
        grads = {n: q.grad.clone() for n, q in net.named_parameters() if q.grad is not None}
        torch.save({"grads": grads, "sink_cleared": net.aux_sink is None}, os.path.join(out_dir, f"aux_{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_aux_outputs_through_the_ddp_wrapper_get_averaged_gradients(tmp_path):
    from test_network import build, make_plans

    torch.manual_seed(3)
    inputs = [torch.randn(1, 4, 16, 16, 16) for _ in range(WORLD)]
    for rank, x in enumerate(inputs):
        torch.save(x, tmp_path / f"x_{rank}.pt")
    mp.spawn(_aux_worker, args=(str(tmp_path / "init_aux"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"aux_{r}.pt") for r in range(WORLD)]
    # the same step without DDP, one rank's input at a time, averaged
    expected = {}
    for x in inputs:
        net = build(make_plans())
        _student_loss(*net.forward_with_aux(x)).backward()
        for n, q in net.named_parameters():
            expected[n] = expected.get(n, 0) + q.grad / WORLD
    qkv = "transformers.0.layers.0.qkv.weight"
    assert qkv in results[0]["grads"] and results[0]["grads"][qkv].abs().sum() > 0, "attention got no gradient"
    for r in results:
        assert r["sink_cleared"]
        assert set(r["grads"]) == set(expected)
        for n, g in r["grads"].items():
            torch.testing.assert_close(g, expected[n], rtol=1e-4, atol=1e-6, msg=n)


def _load(tmp_path, stage):
    return [torch.load(tmp_path / f"{stage}_{r}.pt") for r in range(WORLD)]


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_discriminator_broadcast_and_gradient_averaging(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    init, bcast, step = _load(tmp_path, "init"), _load(tmp_path, "bcast"), _load(tmp_path, "step")
    assert not _equal(init[0], init[1]), "ranks should start from different random discriminators"
    assert _equal(bcast[0], init[0]) and _equal(bcast[1], init[0]), "rank 0's weights must reach every rank"
    assert not _equal(step[0], bcast[0]), "the step must change the discriminator"
    assert _equal(step[0], step[1]), "with averaged gradients both ranks take the same step"


def test_broadcast_without_process_group_is_a_no_op():
    disc = StyleDiscriminator(4, 3, base_channels=2)
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    broadcast_module(disc)
    assert _equal(before, disc.state_dict())
