"""``sseg pretrain``: pseudo-boundary pre-training on a feature store (torchrun-ready)."""

from __future__ import annotations

import argparse
import json

NAME = "pretrain"
HELP = (
    "Pre-train the genre residual and context model on cached features with duration-aware "
    "pseudo-boundaries (run under torchrun for several GPUs)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg pretrain``."""
    parser.add_argument("--config", required=True, help="config file (.json or .toml)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from out_dir/train_state.safetensors"
    )
    parser.add_argument("--steps", type=int, default=None, help="override the config's steps")
    parser.add_argument("--device", default=None, help="override the config's device")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Load the config, train, print a one-line JSON summary (rank 0)."""
    from ..training.pretrain import run_pretraining
    from ..training.pretrain_config import load_config

    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.device is not None:
        overrides["device"] = args.device
    cfg = load_config(args.config, overrides)
    summary = run_pretraining(cfg, resume=args.resume, progress=not args.quiet)
    if summary["rank"] == 0:
        keep = ("steps", "first_loss", "last_loss", "videos", "windows", "world_size", "model",
                "bad_videos")  # fmt: skip
        print(json.dumps({k: summary[k] for k in keep}))
    return 0
