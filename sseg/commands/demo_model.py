"""``sseg demo-model``: build (or locate) the offline demo model in the cache."""

from __future__ import annotations

import argparse

NAME = "demo-model"
HELP = "Build the offline demo scene model (deterministic, < 1 min on CPU) and print its path."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``sseg demo-model``."""
    parser.add_argument(
        "--output", metavar="PATH", help="write here instead of the cache ($SSEG_CACHE_DIR)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Build the demo model unless it is already there; print its path."""
    from pathlib import Path

    from ..segmentation.demo import build_demo_model, demo_model_path

    path = Path(args.output) if args.output else demo_model_path()
    if args.force or not path.is_file():
        build_demo_model(path, quiet=args.quiet)
    print(path)
    return 0
