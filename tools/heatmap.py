"""Render anomaly heatmaps of a trained vos-seg checkpoint: one PNG per image, score and view.

Writes ``<out>/<score>/<view>/<frame_id>.png`` (views: map, overlay, panel; ``--flat``:
``<out>/<frame_id>_<score>_<view>.png``) and ``<out>/<score>/normalizer.json``
(the shared colour range and threshold). Colours are shared across all images: by default the 1st-99th
percentiles of the scores of the whole input set (calibrated on in-distribution pixels when a labelled dataset
is given); ``--per-image`` stretches each image on its own and says so in the picture.

Examples:
    python tools/heatmap.py --checkpoint runs/demo/best.pt --images photos/ --out runs/heatmaps
    python tools/heatmap.py --checkpoint runs/demo/best.pt --dataset synthetic --root data/synthetic \\
        --scores energy msp --views panel overlay --calibrate --out runs/demo/heatmaps
    python tools/heatmap.py --checkpoint best.pt --images "frames/*.jpg" --mode slide --crop 512 1024 \\
        --range -12 -2 --save-npy --out out/

``--range`` and ``--threshold T`` (one value) apply to every score; give one threshold per score otherwise. The
``sml`` score's per-class statistics are fitted on the input images themselves (an extra inference pass, no
labels used). ``weighted_energy`` and ``vos_posterior`` need a checkpoint trained with the VOS plugin.

Exit status: 0 when every image was rendered, 1 when some failed (listed at the end), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def parse_args(argv=None) -> argparse.Namespace:
    from vos_seg.engine.heatmaps import VIEWS
    from vos_seg.scores import SCORE_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by tools/train.py")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="SPEC",
                        help="image folders (recursive), glob patterns, list files (.txt, one path per line) or paths")
    source.add_argument("--dataset", metavar="NAME", help="anomaly benchmark reader name (with labels); needs --root")
    parser.add_argument("--root", help="dataset folder for --dataset")
    parser.add_argument("--scores", nargs="+", default=["energy"], choices=SCORE_NAMES, metavar="SCORE",
                        help=f"scores to render (default: energy); any of {', '.join(SCORE_NAMES)}")
    parser.add_argument("--views", nargs="*", default=["panel"], choices=VIEWS, metavar="VIEW",
                        help="views to write: map, overlay, panel (default: panel; none with --save-npy only)")
    parser.add_argument("--out", required=True, help="output folder")
    norm = parser.add_mutually_exclusive_group()
    norm.add_argument("--range", nargs=2, type=float, metavar=("VMIN", "VMAX"), help="fixed colour range")
    norm.add_argument("--percentiles", nargs=2, type=float, metavar=("LO", "HI"),
                      help="colour range from these percentiles of all input pixels (default 1 99)")
    norm.add_argument("--calibrate", action="store_true",
                      help="threshold at 95%% TPR of in-distribution pixels (needs --dataset labels); "
                           "the default with --dataset")
    norm.add_argument("--per-image", action="store_true", help="stretch each image to its own range (labelled)")
    parser.add_argument("--threshold", nargs="+", type=float, metavar="T",
                        help="detection threshold on the raw score: one value, or one per --scores entry")
    parser.add_argument("--cmap", default="inferno", help="matplotlib colormap (default inferno)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the map in the overlay view")
    parser.add_argument("--plain", action="store_true", help="map/overlay as bare HxW images, without annotations")
    parser.add_argument("--flat", action="store_true", help="write <out>/<frame_id>_<score>_<view>.png (no subfolders)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--mode", choices=("whole", "slide"), default="whole", help="whole image or sliding window")
    parser.add_argument("--crop", nargs=2, type=int, default=(512, 1024), metavar=("H", "W"),
                        help="sliding-window size for --mode slide")
    parser.add_argument("--scale", type=float, default=1.0, help="resize factor before inference (maps at full size)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for inference")
    parser.add_argument("--save-npy", action="store_true", help="also write raw float32 maps <out>/<score>/npy/")
    parser.add_argument("--submission", metavar="DIR", help="also write SegmentMeIfYouCan HDF5 maps under DIR")
    parser.add_argument("--method-name", default="vos_seg", help="submission method folder prefix")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.dataset and not args.root:
        parser.error("--dataset needs --root")
    if args.threshold and len(args.threshold) not in (1, len(args.scores)):
        parser.error(f"--threshold takes one value or one per score ({len(args.scores)}), got {len(args.threshold)}")
    return args


def options_from_args(args: argparse.Namespace):
    from vos_seg.engine.heatmaps import HeatmapOptions

    if args.range:
        normalization = "fixed"
    elif args.per_image:
        normalization = "per_image"
    elif args.calibrate or (args.dataset and not args.percentiles):
        normalization = "calibrated"
    else:
        normalization = "percentiles"
    thresholds = {}
    if args.threshold:
        values = args.threshold * len(args.scores) if len(args.threshold) == 1 else args.threshold
        thresholds = dict(zip(args.scores, values))
    return HeatmapOptions(
        scores=tuple(args.scores), views=tuple(args.views), normalization=normalization,
        value_range=tuple(args.range) if args.range else None,
        percentiles=tuple(args.percentiles) if args.percentiles else (1.0, 99.0), thresholds=thresholds,
        cmap=args.cmap, alpha=args.alpha, batch_size=args.batch_size, mode=args.mode, crop_size=tuple(args.crop),
        scale=args.scale, amp=args.amp, plain=args.plain, save_npy=args.save_npy, submission_dir=args.submission,
        dataset_name=args.dataset or "images", method_name=args.method_name, flat=args.flat)


def main(argv=None) -> int:
    args = parse_args(argv)
    from vos_seg.engine.checkpoint import load_inference_model
    from vos_seg.engine.heatmap_inputs import collect_images, dataset_inputs
    from vos_seg.engine.heatmaps import make_heatmaps

    try:
        options = options_from_args(args)
        inputs = dataset_inputs(args.dataset, args.root) if args.dataset else collect_images(args.images)
        model = load_inference_model(args.checkpoint, device=args.device)
        report = make_heatmaps(model, inputs, args.out, options, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"heatmap: error: {exc}", file=sys.stderr)
        return 2
    rendered = report.num_frames - len(report.failures)
    print(f"rendered {rendered}/{report.num_frames} images -> {args.out} ({len(report.written)} files)")
    for name, normalizer in report.normalizers.items():
        if normalizer.mode != "per_image":
            print(f"  {name}: {normalizer.describe()}")
    if report.failures:
        print(f"{len(report.failures)} image(s) failed:", file=sys.stderr)
        for source, message in report.failures:
            print(f"  {source}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
