"""Per-class pixel selection and ring-buffer writes, against plain-Python references."""

from collections import deque

import pytest
import torch

from vos_seg.queues import ring_enqueue, select_pixels_per_class


def test_selection_picks_each_class_without_replacement(generator):
    labels = torch.tensor([0, 1, 1, 255, -1, 2, 2, 2, 2, 2, 7, 1, 0, 2])
    index, valid = select_pixels_per_class(labels, num_classes=4, per_class=3, generator=generator)
    assert index.shape == valid.shape == (4, 3)
    expected_counts = [2, 3, 3, 0]  # class 0 has 2 pixels, 1 has 3, 2 has 6 (capped at 3), 3 none
    assert valid.sum(1).tolist() == expected_counts
    for k in range(4):
        picked = index[k][valid[k]].tolist()
        assert len(set(picked)) == len(picked), f"class {k} picked a pixel twice: {picked}"
        assert all(labels[i] == k for i in picked), f"class {k} picked labels {labels[picked].tolist()}"
        assert valid[k].tolist() == sorted(valid[k].tolist(), reverse=True), "valid entries must come first"


def test_selection_is_uniform(generator):
    # 10 pixels of class 0 among void/outlier/class-1 pixels; 3 picks per draw -> each pixel picked w.p. 0.3.
    labels = torch.tensor([0, 1, 255, 0, 0, -3, 0, 0, 1, 0, 0, 0, 0, 0])
    class0 = (labels == 0).nonzero().flatten()
    draws = 4000
    hits = torch.zeros(labels.shape[0])
    for _ in range(draws):
        index, valid = select_pixels_per_class(labels, 2, 3, generator=generator)
        hits[index[0][valid[0]]] += 1
    freq = hits[class0] / draws
    # binomial sd = sqrt(0.3 * 0.7 / 4000) = 0.0072; 5 sd tolerance
    assert (freq - 0.3).abs().max() < 0.036, f"pick frequencies {freq.tolist()}"
    assert hits[labels != 0].sum() == 0


def test_selection_of_empty_and_all_void(generator):
    index, valid = select_pixels_per_class(torch.full((5,), 255), 3, 2, generator=generator)
    assert not valid.any() and index.shape == (3, 2)
    index, valid = select_pixels_per_class(torch.zeros(0, dtype=torch.long), 3, 2, generator=generator)
    assert not valid.any() and index.shape == (3, 2)


def test_ring_buffer_matches_a_deque_reference(generator):
    num_classes, size, dim, per_step = 3, 5, 2, 4
    queue = torch.zeros(num_classes, size, dim)
    fill = torch.zeros(num_classes, dtype=torch.long)
    position = torch.zeros(num_classes, dtype=torch.long)
    reference = [deque(maxlen=size) for _ in range(num_classes)]
    counter = 0.0
    for _ in range(12):
        items = torch.arange(counter, counter + num_classes * per_step * dim).reshape(num_classes, per_step, dim)
        counter += items.numel()
        valid = torch.rand(num_classes, per_step, generator=generator) < 0.6
        ring_enqueue(queue, fill, position, items, valid)
        for k in range(num_classes):
            reference[k].extend(tuple(row.tolist()) for row in items[k][valid[k]])
        for k in range(num_classes):
            assert fill[k] == len(reference[k])
            stored = {tuple(row.tolist()) for row in queue[k, : int(fill[k])]}
            assert stored == set(reference[k]), f"class {k}: queue {stored} vs reference {set(reference[k])}"
            # the next write position is right after the newest item
            newest = reference[k][-1] if reference[k] else None
            if newest is not None:
                assert tuple(queue[k, (int(position[k]) - 1) % size].tolist()) == newest
    assert (fill == size).all()


def test_ring_buffer_invalid_items_write_nothing():
    queue = torch.arange(12.0).reshape(2, 3, 2)
    before = queue.clone()
    fill = torch.full((2,), 3)
    position = torch.tensor([1, 2])
    ring_enqueue(queue, fill, position, torch.full((2, 3, 2), float("nan")), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(queue, before)
    assert position.tolist() == [1, 2] and fill.tolist() == [3, 3]


def test_ring_buffer_rejects_bad_shapes():
    queue = torch.zeros(2, 3, 4)
    fill, position = torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"expected items of shape \(2, m, 4\), got \(2, 1, 5\)"):
        ring_enqueue(queue, fill, position, torch.zeros(2, 1, 5), torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"valid shape \(2, 2\) does not match items shape \(2, 1, 4\)"):
        ring_enqueue(queue, fill, position, torch.zeros(2, 1, 4), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="cannot enqueue 4 items per class into queues of size 3"):
        ring_enqueue(queue, fill, position, torch.zeros(2, 4, 4), torch.ones(2, 4, dtype=torch.bool))
