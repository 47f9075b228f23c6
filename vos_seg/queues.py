"""Per-class feature queues for VOS: random per-class pixel selection and ring-buffer writes, without host sync.

VOS (Du et al., ICLR 2022) keeps, per class, the last ``queue_size`` features seen in training and fits its
class-conditional Gaussians to them. In segmentation every training step offers thousands of pixels per class;
these helpers pick a few of them uniformly at random per class and write them into fixed-size ring buffers, with
tensor operations only (no per-class Python loop, no ``.item()``, no data-dependent shapes), so that a CUDA step
never waits for the device.
"""

from __future__ import annotations

import torch

__all__ = ["select_pixels_per_class", "ring_enqueue"]

_KEY_BITS = 31  # random sort keys below each class's label offset: label * 2**31 + key


def select_pixels_per_class(
    labels: torch.Tensor, num_classes: int, per_class: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick up to ``per_class`` pixels of each class uniformly at random, without replacement.

    One sort of ``label * 2**31 + random key`` groups the pixels by class in random order; each class's first
    ``per_class`` entries are its picks. Labels outside ``0..num_classes-1`` (void, outliers) are never picked.

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
    known = (labels >= 0) & (labels < num_classes)
    group = torch.where(known, labels, torch.full_like(labels, num_classes))  # unknown pixels sort last
    keys = torch.randint(0, 2**_KEY_BITS, (count,), generator=generator, device=labels.device)
    order = torch.argsort(group.long() * 2**_KEY_BITS + keys)
    counts = torch.zeros(num_classes + 1, dtype=torch.long, device=labels.device)
    counts.scatter_add_(0, group.long(), torch.ones_like(group, dtype=torch.long))
    counts = counts[:num_classes]
    starts = torch.cumsum(counts, 0) - counts
    offsets = torch.arange(per_class, device=labels.device)
    valid = offsets[None, :] < counts[:, None]
    position = (starts[:, None] + offsets[None, :]).clamp(max=max(count - 1, 0))
    index = order[position] if count > 0 else torch.zeros_like(position)
    return index, valid


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
