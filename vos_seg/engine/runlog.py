"""Run logs as CSV or JSON lines: ``train.<ext>`` (loss terms, lr, speed) and ``val.<ext>`` (metrics)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "read_log"]


def _cell(v: Any) -> Any:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


class RunLogger:
    """Append rows to ``<dir>/<stream>.csv`` or ``<dir>/<stream>.jsonl``.

    CSV files take their columns from the first row written to them; later rows must have the same
    keys (missing ones are left empty). On resume, :meth:`truncate_after` drops rows logged after the
    checkpoint, so the files read as if the run had never stopped.

    Args:
        output_dir: the run folder.
        fmt: ``"csv"`` or ``"jsonl"``.

    Raises:
        ValueError: unknown format.
    """

    def __init__(self, output_dir: str | os.PathLike, fmt: str = "csv") -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"log format must be 'csv' or 'jsonl', got {fmt!r}")
        self.dir, self.fmt = Path(output_dir), fmt

    def path(self, stream: str) -> Path:
        return self.dir / f"{stream}.{self.fmt}"

    def log(self, stream: str, row: dict[str, Any]) -> None:
        path = self.path(stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "jsonl":
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            return
        fields = None
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="") as fh:
                fields = next(csv.reader(fh))
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields or list(row), extrasaction="ignore")
            if fields is None:
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in row.items()})

    def truncate_after(self, iteration: int) -> None:
        """Drop rows whose ``iteration`` is greater than ``iteration`` from every stream."""
        for stream in ("train", "val"):
            path = self.path(stream)
            if not path.is_file():
                continue
            rows = read_log(path)
            kept = [r for r in rows if int(float(r["iteration"])) <= iteration]
            if len(kept) == len(rows):
                continue
            path.unlink()
            for r in kept:
                self.log(stream, r)


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` (values as strings) or ``.jsonl`` log.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"log file {str(path)!r} does not exist")
    with open(path, newline="") as fh:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in fh if line.strip()]
        return list(csv.DictReader(fh))
