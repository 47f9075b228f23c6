"""Generate the synthetic road world (Cityscapes-style train/val, RoadAnomaly21-style anomaly split).

Does nothing when ``--out`` already holds a complete world made with the same parameters (see its
``synthetic_world.json``); ``--force`` redraws it.

Usage:
    python tools/make_synthetic.py --out data/synthetic --train 300 --val 50 --anomaly 50 \
        --height 256 --width 512 --seed 0 [--outlier-exposure] [--workers 2] [--force]
"""

from __future__ import annotations

import argparse
import sys
import time

from vos_seg.data.synthetic import CLASS_NAMES, generate_world, world_matches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/synthetic", help="output folder")
    parser.add_argument("--train", type=int, default=300, help="training images")
    parser.add_argument("--val", type=int, default=50, help="validation images")
    parser.add_argument("--anomaly", type=int, default=50, help="anomaly-split images")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outlier-exposure", action="store_true",
                        help="paste outlier-exposure objects (train id 254) into half of the training images")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--force", action="store_true", help="redraw even if a matching world exists")
    args = parser.parse_args(argv)

    params = dict(num_train=args.train, num_val=args.val, num_anomaly=args.anomaly, height=args.height,
                  width=args.width, seed=args.seed, outlier_exposure=args.outlier_exposure)
    if not args.force and world_matches(args.out, **params):
        print(f"{args.out}: synthetic world up to date, nothing to do (use --force to redraw)")
        return 0
    start = time.perf_counter()
    try:
        generate_world(args.out, workers=args.workers, **params)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = args.train + args.val + args.anomaly
    seconds = time.perf_counter() - start
    print(f"{args.out}: {total} images ({args.train} train, {args.val} val, {args.anomaly} anomaly) at "
          f"{args.height}x{args.width} in {seconds:.1f} s with {args.workers} worker(s); "
          f"{len(CLASS_NAMES)} classes: {', '.join(CLASS_NAMES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
