"""Per-class feature queues for VOS: random per-class pixel selection and ring-buffer writes, without host sync.

VOS (Du et al., ICLR 2022) keeps, per class, the last ``queue_size`` features seen in training and fits its
class-conditional Gaussians to them. In segmentation every training step offers thousands of pixels per class;
these helpers pick a few of them uniformly at random per class and write them into fixed-size ring buffers, with
tensor operations only (no per-class Python loop, no ``.item()``, no data-dependent shapes), so that a CUDA step
never waits for the device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["select_pixels_per_class", "ring_enqueue", "all_gather_picks"]

_NO_PICK = torch.iinfo(torch.int64).max  # key of pixels that cannot be picked (other class, void, picked)


def select_pixels_per_class(
    labels: torch.Tensor, num_classes: int, per_class: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick up to ``per_class`` pixels of each class uniformly at random, without replacement.

    Every pixel gets a unique random key (random high part, pixel index low part); the picks of a class are its
    ``per_class`` smallest keys, found in ``per_class`` rounds of one per-class minimum (``scatter_reduce``)
    over all pixels at once. The smallest keys of i.i.d. uniform draws form a uniform random subset. No sort:
    a CPU ``argsort`` of 10^5-10^6 keys costs more than all of this, and far more with several threads on a
    busy machine. Labels outside ``0..num_classes-1`` (void, outliers) are never picked.

    Args:
        labels: flat integer labels of the candidate pixels.
        num_classes: number of known classes ``K``.
        per_class: picks per class ``m`` (fewer when a class has fewer pixels; see ``valid``).
        generator: optional generator for the random keys, on ``labels``' device.

    Shape:
        labels: (P,) -> index: (K, m) int64 into ``labels``, valid: (K, m) bool. Row k's valid entries come
        first; invalid entries hold an arbitrary in-range index.

    Returns:
        ``(index, valid)``.
    """
    labels = labels.reshape(-1)
    count = labels.shape[0]
    # Few full-size ops (each costs a parallel region): unknown labels (< 0 or >= K) -> group K, never read.
    group = labels.long().clamp(-1, num_classes).remainder(num_classes + 1)
    # key = random * (P + 1) + pixel index: unique, uniform order, the index recoverable from the key. One extra
    # slot (index P) is where rounds of classes without pixels left write.
    random = torch.randint(0, _NO_PICK // (count + 1), (count + 1,), generator=generator, device=labels.device)
    keys = torch.arange(count + 1, device=labels.device).add_(random, alpha=count + 1)
    index, valid = [], []
    for _ in range(per_class):  # rounds, not classes: every class is served at once
        smallest = keys.new_full((num_classes + 1,), _NO_PICK).scatter_reduce(0, group, keys[:count], "amin")
        found = smallest[:num_classes] < _NO_PICK
        picked = torch.where(found, smallest[:num_classes] % (count + 1), count)
        keys.index_put_((picked,), keys.new_full(picked.shape, _NO_PICK))  # picked pixels leave the draw
        index.append(picked.clamp(max=max(count - 1, 0)))
        valid.append(found)
    return torch.stack(index, 1), torch.stack(valid, 1)


def ring_enqueue(
    queue: torch.Tensor, fill: torch.Tensor, position: torch.Tensor, items: torch.Tensor, valid: torch.Tensor
) -> None:
    """Write each class's valid items into its ring buffer, in place.

    Row k's valid items go, in order, to slots ``position[k], position[k] + 1, ...`` (mod ``Q``), overwriting the
    oldest entries once the buffer is full; invalid items write nothing (their slots, distinct from the valid
    ones, are rewritten with their own old values, so the write is one fixed-shape ``index_put_``).

    Args:
        queue: the ring buffers, updated in place.
        fill: number of entries written so far per class, capped at ``Q``; updated in place.
        position: next slot to write per class; updated in place.
        items: candidate items; ``m <= Q``.
        valid: which items to write.

    Shape:
        queue: (K, Q, D), fill: (K,), position: (K,), items: (K, m, D), valid: (K, m).

    Raises:
        ValueError: if the shapes disagree or ``m > Q``.
    """
    num_classes, size, dim = queue.shape
    if items.dim() != 3 or items.shape[0] != num_classes or items.shape[2] != dim:
        raise ValueError(f"expected items of shape ({num_classes}, m, {dim}), got {tuple(items.shape)}")
    if tuple(valid.shape) != tuple(items.shape[:2]):
        raise ValueError(f"valid shape {tuple(valid.shape)} does not match items shape {tuple(items.shape)}")
    if items.shape[1] > size:
        raise ValueError(f"cannot enqueue {items.shape[1]} items per class into queues of size {size}")
    taken = valid.long()
    skipped = 1 - taken
    num_taken = taken.sum(1)
    rank = torch.where(
        valid,
        torch.cumsum(taken, 1) - taken,  # valid items: 0, 1, ... in order
        num_taken[:, None] + torch.cumsum(skipped, 1) - skipped,  # invalid ones: the slots after them
    )
    slot = (position[:, None] + rank) % size
    row = torch.arange(num_classes, device=queue.device)[:, None].expand_as(slot)
    old = queue[row, slot]
    queue[row, slot] = torch.where(valid[..., None], items.to(queue.dtype), old)
    position.copy_((position + num_taken) % size)
    fill.copy_(torch.clamp(fill + num_taken, max=size))


def all_gather_picks(features: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's picks, so that all ranks write the same items into their queues.

    Fixed-size slots (invalid picks included, flagged by ``valid``) keep the shapes equal on every rank; features
    and validity travel in one ``all_gather``. Needs an initialised ``torch.distributed`` process group.

    Shape:
        features: (K, m, D), valid: (K, m) -> (K, W*m, D), (K, W*m) for W ranks, in rank order.
    """
    packed = torch.cat([features, valid[..., None].to(features.dtype)], dim=-1).contiguous()
    gathered = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, packed)
    merged = torch.cat(gathered, dim=1)  # (K, W*m, D+1)
    return merged[..., :-1], merged[..., -1] > 0.5
