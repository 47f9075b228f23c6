"""Per-frame arrays kept between the two passes of the evaluation, with bounded memory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ScoreMapStore"]


class ScoreMapStore:
    """Arrays kept between the two passes, in memory until ``max_bytes`` and in a temporary folder beyond.

    Once the total would exceed ``max_bytes``, everything held so far is written to ``.npy`` files in a
    temporary folder (under ``workdir``, default the system's), and every later array goes there too; the
    folder is removed by :meth:`close` (or on leaving a ``with`` block).

    Args:
        max_bytes: in-memory budget; 0 sends everything to disk.
        workdir: parent of the temporary folder.
    """

    def __init__(self, max_bytes: int, workdir: str | os.PathLike | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.workdir = workdir
        self._memory: dict[Any, np.ndarray] = {}
        self._files: dict[Any, Path] = {}
        self._bytes = 0
        self._dir: str | None = None

    @property
    def on_disk(self) -> bool:
        return self._dir is not None

    @property
    def nbytes(self) -> int:
        """Bytes stored so far (in memory or on disk)."""
        return self._bytes

    def _spill(self) -> None:
        if self.workdir is not None:
            Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.mkdtemp(prefix="vos_seg_maps_", dir=self.workdir)
        for key, array in self._memory.items():
            self._write(key, array)
        self._memory.clear()

    def _write(self, key: Any, array: np.ndarray) -> None:
        path = Path(self._dir) / f"{len(self._files)}.npy"
        np.save(path, array, allow_pickle=False)
        self._files[key] = path

    def put(self, key: Any, array: np.ndarray) -> None:
        if key in self._memory or key in self._files:
            raise ValueError(f"key {key!r} is already stored")
        array = np.ascontiguousarray(array)
        self._bytes += array.nbytes
        if self._dir is None and self._bytes > self.max_bytes:
            self._spill()
        if self._dir is None:
            self._memory[key] = array
        else:
            self._write(key, array)

    def get(self, key: Any) -> np.ndarray:
        if key in self._memory:
            return self._memory[key]
        if key in self._files:
            return np.load(self._files[key], allow_pickle=False)
        raise KeyError(key)

    def close(self) -> None:
        self._memory.clear()
        self._files.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "ScoreMapStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
