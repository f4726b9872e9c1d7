"""``sseg`` command line: one sub-command per module in :mod:`sseg.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Errors sseg raises on purpose (:class:`SsegError`) print
one line to stderr and exit with their ``exit_code``:

    0 success, 1 internal/other sseg error, 2 bad input or usage,
    3 video cannot be decoded, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import SsegError
from .threads import apply_threads, parse_threads

COMMANDS = (
    "segment",
    "extract",
    "store",
    "pretrain",
    "finetune",
    "evaluate",
    "ablate",
    "demo-model",
    "export",
)


def _command_module(name: str):
    return importlib.import_module(f"sseg.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="sseg", description="Video scene segmentation with genre and shot-duration signals."
    )
    parser.add_argument("--version", action="version", version=f"sseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = _command_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == f"sseg.commands.{name.replace('-', '_')}":
                continue  # command not shipped in this build
            raise
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.add_argument(
            "--threads",
            type=parse_threads,
            default="auto",
            help="CPU threads for torch (default auto: 1 on up to 3 cores, else half the cores)",
        )
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sseg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    try:
        return int(args._run(args) or 0)
    except SsegError as exc:
        print(f"sseg {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"sseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
