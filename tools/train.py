"""Train an SMP segmentation model with (or without) VOS from a YAML config.

Usage:
    python tools/train.py --config configs/demo.yaml [--set optim.lr=0.01 ...] [--resume runs/demo/last.pt]
    torchrun --nproc_per_node=4 tools/train.py --config configs/cityscapes_unet_r34.yaml

``--resume`` without ``--config`` continues with the config stored in the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from vos_seg.engine.config import config_to_dict, load_config  # noqa: E402
from vos_seg.engine.trainer import config_for_resume, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML config (configs/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=0.01 (repeatable)")
    parser.add_argument("--resume", help="checkpoint to continue from (last.pt)")
    args = parser.parse_args(argv)
    if args.config is None and args.resume is None:
        parser.error("give --config, --resume, or both")
    try:
        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = config_for_resume(args.resume)
            if args.overrides:
                import tempfile

                import yaml

                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
                    yaml.safe_dump(config_to_dict(cfg), fh)
                cfg = load_config(fh.name, args.overrides)
                os.unlink(fh.name)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
