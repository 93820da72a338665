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
