"""Datasets and iteration-based loaders whose order and augmentation depend only on (seed, iteration).

Training counts iterations, not epochs. :class:`IterationBatchSampler` walks epoch after epoch of a
``DistributedSampler`` (its permutation of epoch ``e`` is seeded by ``seed + e``; each rank takes its
share) and yields the batches of iterations ``start_iter .. total_iters - 1``. Every sample carries
its own augmentation seed, derived from (seed, epoch, position), which :class:`SeededDataset` installs
in the reader's transform just before reading. So the batch of iteration ``i`` is the same whether
the run went straight through or was resumed at ``i`` and whatever ``num_workers`` is.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["IterationBatchSampler", "SeededDataset", "build_segmentation_dataset", "build_train_loader"]


def _sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class IterationBatchSampler(Sampler):
    """Batches of ``(index, augmentation_seed)`` pairs for iterations ``start_iter .. total_iters - 1``.

    Args:
        dataset_len: number of training items.
        batch_size: items per batch on this rank.
        total_iters: the iteration count of the whole run.
        seed: run seed (epoch ``e`` shuffles with ``seed + e``, as ``DistributedSampler`` does).
        start_iter: first iteration to yield (a resumed run).
        rank, world_size: this process's share of each global batch.

    Raises:
        ValueError: the dataset is smaller than one global batch.
    """

    def __init__(self, dataset_len: int, batch_size: int, total_iters: int, *, seed: int = 0,
                 start_iter: int = 0, rank: int = 0, world_size: int = 1) -> None:
        per_rank = dataset_len // world_size
        if per_rank < batch_size:
            raise ValueError(
                f"training set of {dataset_len} items is smaller than one batch of {batch_size} x {world_size} ranks"
            )
        self.dataset_len, self.batch_size, self.total_iters = dataset_len, batch_size, total_iters
        self.seed, self.start_iter, self.rank, self.world_size = seed, start_iter, rank, world_size
        self.iters_per_epoch = per_rank // batch_size

    def __len__(self) -> int:
        return max(0, self.total_iters - self.start_iter)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        sampler = DistributedSampler(
            range(self.dataset_len), num_replicas=self.world_size, rank=self.rank, shuffle=True,
            seed=self.seed, drop_last=True,
        )
        it = self.start_iter
        while it < self.total_iters:
            epoch, step = divmod(it, self.iters_per_epoch)
            sampler.set_epoch(epoch)
            indices = list(sampler)
            while step < self.iters_per_epoch and it < self.total_iters:
                lo = step * self.batch_size
                # the global position makes seeds distinct across ranks
                yield [
                    (int(indices[p]), _sample_seed(self.seed, epoch, (lo + p) * self.world_size + self.rank))
                    for p in range(lo, lo + self.batch_size)
                ]
                step += 1
                it += 1


class SeededDataset(Dataset):
    """Wraps a reader so that ``dataset[(index, seed)]`` augments item ``index`` with ``seed``.

    The reader's ``transform`` must offer ``set_random_seed(seed)`` (``vos_seg.data.transforms``
    pipelines do); a reader without a transform is read as is.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        transform = getattr(self.dataset, "transform", None)
        if transform is not None:
            transform.set_random_seed(seed)
        return self.dataset[index]


def _worker_init(worker_id: int) -> None:
    # vos_seg.data.transforms reseeds itself once per worker on its first call; a first call made
    # here settles that, so that the per-sample seeds set by SeededDataset always win.
    info = torch.utils.data.get_worker_info()
    transform = getattr(getattr(info.dataset, "dataset", None), "transform", None)
    if transform is not None:
        transform(image=np.zeros((8, 8, 3), np.uint8))


def build_segmentation_dataset(data_cfg: Any, split: str, num_classes: int, transform: Any) -> Dataset:
    """The reader for ``data_cfg.dataset`` (cityscapes | synthetic | folder) on ``split``.

    Raises:
        ValueError: unknown dataset type.
        FileNotFoundError: the split's folders are missing (from the reader).
    """
    kind = data_cfg.dataset
    common = dict(num_classes=num_classes, transform=transform, ignore_index=data_cfg.ignore_index,
                  outlier_value=data_cfg.outlier_value)
    if kind in ("cityscapes", "synthetic"):
        from vos_seg.data.cityscapes import CityscapesSegmentation

        label_source = data_cfg.label_source if kind == "cityscapes" else "trainIds"
        return CityscapesSegmentation(data_cfg.root, split, label_source=label_source, **common)
    if kind == "folder":
        from vos_seg.data.folder import FolderSegmentation

        root = data_cfg.root
        return FolderSegmentation(os.path.join(root, "images", split), os.path.join(root, "masks", split), **common)
    raise ValueError(f"unknown data.dataset {kind!r}; expected 'cityscapes', 'synthetic' or 'folder'")


def build_train_loader(cfg: Any, *, start_iter: int, rank: int, world_size: int,
                       pin_memory: bool = False) -> DataLoader:
    """The training ``DataLoader`` for iterations ``start_iter .. cfg.optim.iterations - 1``."""
    from vos_seg.data.transforms import train_transform

    d = cfg.data
    transform = train_transform(tuple(d.crop_size), scale_range=tuple(d.scale_range), ignore_index=d.ignore_index)
    dataset = build_segmentation_dataset(d, d.train_split, cfg.model.num_classes, transform)
    sampler = IterationBatchSampler(
        len(dataset), d.batch_size, cfg.optim.iterations, seed=cfg.run.seed, start_iter=start_iter,
        rank=rank, world_size=world_size,
    )
    return DataLoader(
        SeededDataset(dataset), batch_sampler=sampler, num_workers=d.num_workers, pin_memory=pin_memory,
        worker_init_fn=_worker_init if d.num_workers > 0 else None, persistent_workers=False,
    )
