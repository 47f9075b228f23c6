"""Sharded evaluation: two gloo processes, each with half of the frames, `sync()` equals one process with all."""

import os

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vos_seg.metrics import ComponentMetrics, PixelMetrics


def make_frames():
    rng = np.random.default_rng(3)
    labels = (rng.random((4, 32, 32)) < 0.3).astype(np.uint8)
    labels[:, :4] = 255
    scores = (rng.normal(size=(4, 32, 32)) + 1.5 * (labels == 1)).astype(np.float32)
    return scores, labels


def worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    scores, labels = make_frames()
    pixel, component = PixelMetrics(), ComponentMetrics(0.5, 3, 2)
    for i in range(rank, len(scores), world_size):
        pixel.update(scores[i], labels[i])
        component.update(scores[i], labels[i])
    pixel.sync()
    component.sync()
    torch.save({"pixel": pixel.compute(), "component": component.compute()}, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def test_sync_over_two_processes_equals_one_pass(tmp_path):
    # fork: the children share the loaded modules instead of re-importing torch (seconds each on a busy machine)
    mp.start_processes(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    scores, labels = make_frames()
    pixel, component = PixelMetrics(), ComponentMetrics(0.5, 3, 2)
    pixel.update(scores, labels)
    component.update(scores, labels)
    for rank in range(2):
        result = torch.load(tmp_path / f"{rank}.pt")
        assert result["pixel"] == pixel.compute()
        assert result["component"] == component.compute()
