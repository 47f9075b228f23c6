"""Benchmarks for vos-seg: prints a table per section and writes all figures as JSON.

Sections live in ``tools/benchmarks/<name>.py``; each exposes ``run(quick: bool) -> list[dict]`` returning rows
of figures (a ``case`` key plus measured values). Timings are medians over repeats, on whatever device the
section reports.

Usage:
    python tools/benchmark.py                      # every section
    python tools/benchmark.py synthesis step       # chosen sections
    python tools/benchmark.py --quick --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SECTIONS = ("loss", "synthesis", "step", "pixel_metrics", "component_metrics", "heatmaps")


def format_table(rows: list[dict]) -> str:
    """Render rows of figures as a Markdown table (columns in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", help=f"sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--json", default="runs/benchmark.json", help="where to write the figures")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    import torch

    torch.set_num_threads(args.threads)
    chosen = args.sections or list(SECTIONS)
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "sections": {},
    }
    for name in chosen:
        module = importlib.import_module(f"benchmarks.{name}")
        start = time.perf_counter()
        rows = module.run(quick=args.quick)
        report["sections"][name] = rows
        print(f"\n## {name} ({time.perf_counter() - start:.1f} s)\n")
        print(format_table(rows), flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
