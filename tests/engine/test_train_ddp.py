"""Two CPU processes on the gloo backend train one run: ranks stay identical, only rank 0 writes."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from vos_seg.engine.config import load_config

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, cfg_path: str, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from vos_seg.engine.trainer import Trainer

    trainer = Trainer(load_config(cfg_path))
    trainer.fit()
    torch.save({"model": trainer.model.state_dict(), "vos": trainer.plugin.state_dict()},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_gloo_run(tmp_path):
    from vos_seg.data.synthetic import generate_world

    world = tmp_path / "world"
    generate_world(world, num_train=8, num_val=1, num_anomaly=0, height=64, width=64, seed=1)
    cfg = {
        "model": {"arch": "Unet", "encoder_name": "resnet18", "num_classes": 10,
                  # depth 5: DDP needs every parameter used (a shallower resnet keeps unused stages)
                  "options": {"decoder_channels": [16, 8, 8, 8, 8]}},
        "data": {"dataset": "synthetic", "root": str(world), "crop_size": [32, 32], "batch_size": 2,
                 "num_workers": 0},
        "vos": {"queue_size": 4, "pixels_per_class": 2, "sample_from": 50, "start_iter": 1},
        "optim": {"iterations": 4, "lr": 0.01},
        "run": {"output_dir": str(tmp_path / "run"), "log_every": 2, "progress": False},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    mp.spawn(_rank_main, args=(str(path), _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for section in ("model", "vos"):
        for k, v in r0[section].items():
            if "running_" in k or "num_batches_tracked" in k:
                continue  # BN statistics: DDP broadcasts rank 0's before each forward, the last one is local
            assert torch.equal(v, r1[section][k]), f"{section}.{k} differs between ranks"
    assert int(r0["vos"]["step"]) == 4 and bool(r0["vos"]["ready"].any())
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == ["best.pt", "config.yaml", "last.pt", "train.csv", "val.csv"]
