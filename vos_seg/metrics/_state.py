"""Additive metric state: tensors that merge by addition, so sharded evaluation reduces with ``all_reduce(SUM)``."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["AdditiveState"]


class AdditiveState:
    """Mixin for metrics whose whole state is a set of tensors combined by addition.

    Subclasses list their state tensors in ``_state_names``, create them in ``reset()`` and describe their
    configuration (which must match for a merge) in ``_config()``.
    """

    _state_names: tuple[str, ...] = ()

    def _config(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state tensors themselves (not copies): reducing them in place updates the metric."""
        return {name: getattr(self, name) for name in self._state_names}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy saved state tensors into this metric (on its current device).

        Raises:
            ValueError: if a key is missing or unexpected, or a shape differs.
        """
        missing = set(self._state_names) - set(state)
        unexpected = set(state) - set(self._state_names)
        if missing or unexpected:
            raise ValueError(f"state keys differ: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name in self._state_names:
            own = getattr(self, name)
            if tuple(state[name].shape) != tuple(own.shape):
                raise ValueError(f"state `{name}` has shape {tuple(state[name].shape)}, expected {tuple(own.shape)}")
            own.copy_(state[name])

    def merge(self, other: "AdditiveState") -> "AdditiveState":
        """Add another shard's state to this one (same class and configuration) and return ``self``.

        Raises:
            TypeError: if ``other`` is another kind of metric.
            ValueError: if the configurations differ.
        """
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other._config() != self._config():
            raise ValueError(f"cannot merge metrics with different settings: {other._config()} vs {self._config()}")
        for name in self._state_names:
            own = getattr(self, name)
            own += getattr(other, name).to(own.device)
        return self

    def sync(self, group=None) -> "AdditiveState":
        """Sum the state over all processes of ``group`` with ``torch.distributed.all_reduce`` (in place).

        A no-op when ``torch.distributed`` is not initialised. With NCCL, move the metric to the rank's GPU first
        (``metric.to(device)``); every rank must call this, after its last ``update``.
        """
        if dist.is_available() and dist.is_initialized():
            for name in self._state_names:
                dist.all_reduce(getattr(self, name), op=dist.ReduceOp.SUM, group=group)
        return self

    def to(self, device: torch.device | str) -> "AdditiveState":
        """Move the state tensors to ``device`` and return ``self``."""
        for name in self._state_names:
            setattr(self, name, getattr(self, name).to(device))
        return self

    @property
    def device(self) -> torch.device:
        """The device holding the state (that of the first ``update`` unless moved)."""
        return getattr(self, self._state_names[0]).device
