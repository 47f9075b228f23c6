"""The training loop behind ``tools/train.py``: SMP model + optional VOS plugin, resumable exactly.

``train(cfg)`` seeds torch, numpy and ``random`` from ``cfg.run.seed`` (it owns the process, as a
training tool does), builds the model, the plugin (or a plain cross-entropy baseline), optimizer,
schedule and loader, and runs ``cfg.optim.iterations`` steps. Checkpoints (``last.pt``, ``best.pt``)
hold everything needed to continue: ``train(cfg, resume="runs/x/last.pt")`` produces the same
weights and logged losses as an uninterrupted run (batch order and augmentation derive from
(seed, iteration), see :mod:`vos_seg.engine.loaders`; RNG states are restored).

Multi-GPU: launched by ``torchrun`` (``WORLD_SIZE`` set), each process joins the process group,
reads its share of every global batch and trains a ``DistributedDataParallel`` model; the plugin
all-gathers its queue features and its parameters' gradients are averaged here. Only rank 0
validates and writes files. Under DDP the checkpoint holds rank 0's global RNG state.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainConfig, config_from_dict, config_to_dict, save_config
from .loaders import build_segmentation_dataset, build_train_loader
from .model import build_model
from .runlog import RunLogger
from .schedule import build_optimizer, build_scheduler
from .validation import evaluate_anomaly, evaluate_segmentation

__all__ = ["Trainer", "train", "config_for_resume", "CrossEntropyBaseline"]


class CrossEntropyBaseline(torch.nn.Module):
    """Plain cross-entropy over known pixels (void and outlier pixels, labels ``< 0``, ignored).

    The ablation baseline for VOS: no regulariser, no extra parameters. ``last_terms`` has ``loss``
    and ``ce`` like the plugin's.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.masked_fill(target < 0, self.ignore_index)
        loss = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index)
        self.last_terms = {"loss": loss.detach(), "ce": loss.detach()}
        return loss


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("run.device is 'cuda' but no CUDA device is available")
    return torch.device("cuda", local_rank)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Trainer:
    """One training run; see the module docstring.

    Args:
        cfg: the resolved config.
        resume: a checkpoint to continue from (its optimizer, schedule, RNG and plugin state).

    Raises:
        ValueError: inconsistent settings (e.g. ``run.best_metric: auroc`` without ``data.anomaly``),
            or a resume checkpoint whose iteration exceeds ``optim.iterations``.
        FileNotFoundError: a data folder or the resume checkpoint is missing.
    """

    def __init__(self, cfg: TrainConfig, resume: str | os.PathLike | None = None) -> None:
        self.cfg = cfg
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = _resolve_device(cfg.run.device, local_rank)
        if self.world_size > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.is_main = self.rank == 0
        cuda = self.device.type == "cuda"
        self.amp = cfg.optim.amp and cuda
        self.channels_last = cfg.optim.channels_last and cuda
        if cfg.run.best_metric != "miou" and cfg.data.anomaly is None:
            raise ValueError(f"run.best_metric is {cfg.run.best_metric!r} but data.anomaly is not configured")

        _seed_everything(cfg.run.seed)
        self.model = build_model(cfg.model).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.generators: dict[str, torch.Generator] = {}
        if cfg.vos.enabled:
            from vos_seg.plugin import VOS

            v = cfg.vos
            start = v.start_iter if v.start_iter is not None else round((v.start_fraction or 0.0) * cfg.optim.iterations)
            gen = torch.Generator(device=self.device).manual_seed(cfg.run.seed + 1)
            self.generators["plugin"] = gen
            self.criterion: torch.nn.Module = VOS(
                self.model, cfg.model.num_classes, ignore_index=cfg.data.ignore_index, alpha=v.alpha,
                queue_size=v.queue_size, pixels_per_class=v.pixels_per_class, sample_from=v.sample_from,
                select=v.select, start_iter=int(start), cov_eps=v.cov_eps, balanced=v.balanced, phi=v.phi, generator=gen,
                validate=not cuda,  # the readers validate labels; skip the per-step host sync on CUDA
            ).to(self.device)
            self.plugin = self.criterion
        else:
            self.criterion = CrossEntropyBaseline(cfg.data.ignore_index)
            self.plugin = None
        self.optimizer = build_optimizer(self.model, self.plugin, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)  # bf16 needs no loss scaling
        self.iteration = 0
        self.best_metric: float | None = None
        self.logger = RunLogger(cfg.run.output_dir, cfg.run.log_format)
        if resume is not None:
            self._restore(load_checkpoint(resume))
        self.net = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if cuda else None
            )
        if self.is_main:
            os.makedirs(cfg.run.output_dir, exist_ok=True)
            save_config(cfg, os.path.join(cfg.run.output_dir, "config.yaml"))
            self.logger.truncate_after(self.iteration)
        self._val_data = self._build_val_data() if self.is_main else (None, None)

    def _restore(self, state: dict) -> None:
        if state["iteration"] > self.cfg.optim.iterations:
            raise ValueError(
                f"checkpoint is at iteration {state['iteration']}, beyond optim.iterations={self.cfg.optim.iterations}"
            )
        self.model.load_state_dict(state["model"])
        if (state["vos"] is None) != (self.plugin is None):
            raise ValueError("checkpoint and config disagree on vos.enabled; resume with the run's own config")
        if self.plugin is not None:
            self.plugin.load_state_dict(state["vos"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], self.generators)
        self.iteration = int(state["iteration"])
        self.best_metric = state["best_metric"]

    def _build_val_data(self) -> tuple[Any, Any]:
        d = self.cfg.data
        seg = anomaly = None
        if d.val_split is not None:
            from vos_seg.data.transforms import eval_transform

            seg = build_segmentation_dataset(
                d, d.val_split, self.cfg.model.num_classes, eval_transform(ignore_index=d.ignore_index)
            )
        if d.anomaly is not None:
            from vos_seg.data.benchmarks import open_anomaly_dataset

            anomaly = open_anomaly_dataset(d.anomaly.name, d.anomaly.root)
        return seg, anomaly

    def state_dict(self) -> dict:
        """The checkpoint dict (see :mod:`vos_seg.engine.checkpoint`)."""
        return {
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "vos": self.plugin.state_dict() if self.plugin is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(self.generators),
            "iteration": self.iteration,
            "best_metric": self.best_metric,
        }

    def validate(self) -> dict[str, float]:
        """mIoU on the val split and energy AUROC/AP/FPR95 on the anomaly split (rank 0; host syncs)."""
        seg, anomaly = self._val_data
        self.model.eval()
        if self.plugin is not None:
            self.plugin.eval()
        out: dict[str, float] = {}
        d = self.cfg.data
        if seg is not None:
            res = evaluate_segmentation(
                self.model, seg, num_classes=self.cfg.model.num_classes, device=self.device,
                batch_size=d.val_batch_size, num_workers=min(d.num_workers, 2), amp=self.amp,
                max_images=d.val_max_images, channels_last=self.channels_last,
            )
            out.update(miou=res["miou"], pixel_acc=res["pixel_acc"])
        if anomaly is not None:
            out.update(evaluate_anomaly(self.model, anomaly, device=self.device, amp=self.amp,
                                        max_images=d.anomaly.max_images))
        self.model.train()
        if self.plugin is not None:
            self.plugin.train()
        return out

    def _is_better(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        return value < self.best_metric if self.cfg.run.best_metric == "fpr95" else value > self.best_metric

    def _validate_and_checkpoint(self, do_val: bool) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.is_main:
            if do_val:
                metrics = self.validate()
                self.logger.log("val", {"iteration": self.iteration, **metrics})
                key = self.cfg.run.best_metric
                if key in metrics and self._is_better(metrics[key]):
                    self.best_metric = metrics[key]
                    save_checkpoint(os.path.join(self.cfg.run.output_dir, "best.pt"), self.state_dict())
            save_checkpoint(os.path.join(self.cfg.run.output_dir, "last.pt"), self.state_dict())
        if self.world_size > 1:
            dist.barrier()
        return metrics

    def _step(self, images: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        target = target.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with ctx:
            logits = self.net(images)
            loss = self.criterion(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.plugin is not None and self.world_size > 1:
            for p in self.plugin.parameters():  # outside DDP: average by hand
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad.div_(self.world_size)
        if self.cfg.optim.grad_clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        return self.criterion.last_terms

    def fit(self) -> dict[str, Any]:
        """Train to ``optim.iterations``; returns the final validation metrics and timing."""
        cfg = self.cfg
        total = cfg.optim.iterations
        loader = build_train_loader(cfg, start_iter=self.iteration, rank=self.rank, world_size=self.world_size,
                                    pin_memory=self.device.type == "cuda")
        self.model.train()
        self.criterion.train()
        bar = tqdm(total=total, initial=self.iteration, disable=not (self.is_main and cfg.run.progress),
                   dynamic_ncols=True, desc="train")
        window: dict[str, torch.Tensor] = {}
        count, t_window, train_seconds, steps = 0, time.perf_counter(), 0.0, 0
        t_last, cpu_window, cpu_seconds = t_window, time.process_time(), 0.0
        metrics: dict[str, float] = {}
        cpu_last = cpu_window
        for images, target in loader:  # data loading counts as training time
            terms = self._step(images, target)
            self.iteration += 1
            for k, v in terms.items():
                window[k] = window.get(k, 0.0) + v.detach().float()
            count += 1
            it = self.iteration
            do_val = cfg.run.val_every > 0 and it % cfg.run.val_every == 0 or it == total
            do_ckpt = do_val or (cfg.run.checkpoint_every > 0 and it % cfg.run.checkpoint_every == 0)
            if it % cfg.run.log_every == 0 or do_ckpt:
                means = {k: float(v / count) for k, v in window.items()}  # the only host sync of the loop
                now = time.perf_counter()
                row = {"iteration": it, "lr": self.last_lr, **means,
                       "sec_per_iter": (now - t_window) / count,
                       "cpu_sec_per_iter": (time.process_time() - cpu_window) / count}
                if self.is_main:
                    self.logger.log("train", row)
                    bar.set_postfix({k: f"{means[k]:.3g}" for k in ("ce", "uncertainty", "num_virtual") if k in means})
                window, count, t_window, cpu_window = {}, 0, now, time.process_time()
            train_seconds += time.perf_counter() - t_last
            cpu_seconds += time.process_time() - cpu_last
            steps += 1
            bar.update(1)
            if do_ckpt:
                metrics = self._validate_and_checkpoint(do_val)
            t_last, cpu_last = time.perf_counter(), time.process_time()
            if do_ckpt:
                t_window, cpu_window = t_last, cpu_last
        bar.close()
        return {"iteration": self.iteration, "metrics": metrics, "train_seconds": train_seconds,
                "sec_per_iter": train_seconds / max(1, steps),
                "cpu_seconds": cpu_seconds, "best_metric": self.best_metric}


def train(cfg: TrainConfig, resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or continue) a training run; see :class:`Trainer`. Returns :meth:`Trainer.fit`'s summary."""
    return Trainer(cfg, resume=resume).fit()


def config_for_resume(path: str | os.PathLike) -> TrainConfig:
    """The config stored in a checkpoint (to resume without the original YAML)."""
    return config_from_dict(load_checkpoint(path)["config"], source=os.fspath(path), check_paths=True)
