"""Shared test setup: offline, single-threaded, seeded."""

import os

# Nothing may download at test time: SMP/timm/HF hub and albumentations' update check stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# The CI machine has 2 cores; one intra-op thread keeps tests predictable when run side by side.
torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator, so random tests are reproducible without touching the global RNG."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator."""
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
