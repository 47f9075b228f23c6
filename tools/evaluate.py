"""Evaluate anomaly scores on road-anomaly benchmarks: pixel and component metrics, tables, curves.

Examples:
    python tools/evaluate.py --checkpoint runs/demo/best.pt --dataset synthetic=data/synthetic \
        --scores energy weighted_energy msp --out runs/demo/eval
    python tools/evaluate.py --score-maps outputs --dataset road_anomaly21=/data/dataset_AnomalyTrack --out eval

Writes ``metrics.json``, ``metrics.csv``, ``metrics.md`` and ``curves_<dataset>.png`` to ``--out`` and prints the
Markdown table. Exit status: 0 on success, 2 for bad arguments or a missing path, 1 when evaluation fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCORE_CHOICES = ("energy", "weighted_energy", "vos_posterior", "msp", "max_logit", "entropy", "sml")


def _dataset(text: str) -> tuple[str, str]:
    name, sep, root = text.partition("=")
    if not sep or not name or not root:
        raise argparse.ArgumentTypeError(f"expected NAME=ROOT (e.g. road_anomaly21=/data/RoadAnomaly21), got {text!r}")
    return name, root


def _thresholds(values: list[str] | None):
    """``[X]`` -> X for every score; ``[score=X, ...]`` -> per score."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return float(values[0])
    out = {}
    for item in values:
        score, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--component-threshold: expected one number or SCORE=VALUE pairs, got {item!r}")
        out[score] = float(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a training checkpoint (last.pt / best.pt)")
    src.add_argument("--score-maps", help="folder of saved maps: <frame_id>.npy files or the SegmentMeIfYouCan "
                                          "anomaly_p/<method>/<dataset>/<frame_id>.hdf5 layout")
    p.add_argument("--dataset", action="append", type=_dataset, required=True, metavar="NAME=ROOT",
                   help="dataset name (road_anomaly21, road_obstacle21, fishyscapes_laf, lost_and_found, road_anomaly, "
                        "street_hazards, synthetic) and its root folder; repeat for several")
    p.add_argument("--scores", nargs="+", metavar="SCORE",
                   help=f"scores to evaluate ({', '.join(SCORE_CHOICES)}; for --score-maps the method folder names); "
                        "default: all the checkpoint supports")
    p.add_argument("--out", default="runs/eval", help="output folder (default: runs/eval)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--mode", choices=("whole", "slide"), default="whole", help="whole-image or sliding-window inference")
    p.add_argument("--crop", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"), help="sliding-window size")
    p.add_argument("--stride", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="sliding-window step (default: 2/3 of --crop)")
    p.add_argument("--scale", type=float, default=1.0, help="resize images by this factor before inference")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass")
    p.add_argument("--component-threshold", nargs="+", metavar="X|SCORE=X",
                   help="threshold of the component metrics (default: each score's pixel F1-optimal threshold)")
    p.add_argument("--sml-max-images", type=int, default=500,
                   help="training images used to fit the standardized max logit (default: 500)")
    p.add_argument("--save-submission", metavar="DIR",
                   help="also write maps as SegmentMeIfYouCan HDF5 files: DIR/anomaly_p/<method>_<score>/<dataset>/")
    p.add_argument("--method-name", default="vos_seg", help="method name prefix for --save-submission")
    p.add_argument("--max-memory-mb", type=float, default=2048,
                   help="memory for maps kept for the component pass; beyond it they go to a temporary folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    source = args.checkpoint or args.score_maps
    if args.checkpoint and not Path(args.checkpoint).is_file():
        parser.error(f"checkpoint {args.checkpoint!r} does not exist")
    if args.score_maps and not Path(args.score_maps).is_dir():
        parser.error(f"score-map folder {args.score_maps!r} does not exist")
    for name, root in args.dataset:
        if not Path(root).is_dir():
            parser.error(f"dataset root {root!r} for {name!r} does not exist")
    try:
        thresholds = _thresholds(args.component_threshold)
    except ValueError as exc:
        parser.error(str(exc))
    if args.checkpoint and args.scores:
        unknown = [s for s in args.scores if s not in SCORE_CHOICES]
        if unknown:
            parser.error(f"unknown score(s) {', '.join(unknown)}; choose from {', '.join(SCORE_CHOICES)}")

    import warnings

    from vos_seg.evaluation import EvaluationWarning, evaluate
    from vos_seg.evaluation.report import markdown_table, plot_curves, write_csv, write_json

    def show(message, category, *rest, **kw):  # one line per skipped score, not warnings' source-line format
        print(f"evaluate.py: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", EvaluationWarning)
            warnings.showwarning = show
            result = evaluate(
                source, args.dataset, args.scores, device=args.device, batch_size=args.batch_size, mode=args.mode,
                crop_size=tuple(args.crop), stride=tuple(args.stride) if args.stride else None, scale=args.scale,
                amp=args.amp, component_threshold=thresholds, submission_dir=args.save_submission,
                method_name=args.method_name, max_memory_mb=args.max_memory_mb, sml_max_images=args.sml_max_images,
                progress=not args.no_progress,
            )
    except (FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(result.metrics)
    (out / "metrics.md").write_text(table)
    write_json(result.metrics, out / "metrics.json")
    write_csv(result.metrics, out / "metrics.csv")
    plots = plot_curves(result.curves, result.metrics, out)
    if not args.scores:  # requested scores were already warned about
        for score, reason in result.skipped.items():
            print(f"evaluate.py: not evaluated: {reason}", file=sys.stderr)
    print(table, end="")
    print(f"wrote {out / 'metrics.json'}, metrics.csv, metrics.md and {len(plots)} curve plot(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
