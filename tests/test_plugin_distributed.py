"""The VOS plugin under torch.distributed: 2 CPU processes on gloo, a DDP-wrapped model, identical queues."""

import inspect
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
STEPS = 3
PER_CLASS = 4


class TinySegmenter(torch.nn.Module):
    """An SMP-shaped model (``segmentation_head[0]`` is the classifier conv), small enough to spawn quickly."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.segmentation_head = torch.nn.Sequential(torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.encoder(images))


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        from vos_seg.plugin import VOS

        torch.manual_seed(0)  # same initial weights on both ranks (DDP would broadcast them anyway)
        model = DDP(TinySegmenter())
        vos = VOS(model, 3, queue_size=16, pixels_per_class=PER_CLASS, refresh_every=1,
                  generator=torch.Generator().manual_seed(100 + rank))
        # DDP around the plugin averages the loss's phi / energy-weight gradients; its buffers need no syncing
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
        criterion = DDP(vos, **{no_sync: False})
        optimizer = torch.optim.AdamW([*model.parameters(), *vos.parameters()], lr=1e-2)
        data = torch.Generator().manual_seed(10 + rank)  # each rank sees different images
        for _ in range(STEPS):
            images = torch.randn(2, 3, 32, 32, generator=data)
            target = torch.randint(0, 3, (2, 32, 32), generator=data)
            loss = criterion(model(images), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.save(
            {"vos": vos.state_dict(), "loss": loss.detach(), "num_virtual": vos.last_terms["num_virtual"]},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_hold_identical_queues_and_statistics(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    first, second = states[0]["vos"], states[1]["vos"]
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key} differs between ranks"
    # both ranks' picks reach both queues: 2 ranks x 4 pixels x 3 steps = 24 > 16 entries per class
    assert first["fill"].tolist() == [16, 16, 16]
    assert first["ready"].all() and states[0]["num_virtual"] == 3
    assert not torch.equal(states[0]["loss"], states[1]["loss"]), "ranks saw the same data: the test is void"
