"""``sseg store``: check and maintain a feature store (verify checksums, merge rank parts)."""

from __future__ import annotations

import argparse
import sys

NAME = "store"
HELP = (
    "Feature-store maintenance: 'verify' checks every shard file against the SHA-256 in "
    "the index, 'merge' folds the index parts of a distributed extraction into index.json."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands ``verify`` and ``merge``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check every shard file (size, shape, SHA-256)")
    verify.add_argument("store", help="feature store directory")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    merge = sub.add_parser("merge", help="merge rank parts into index.json (no writer open)")
    merge.add_argument("store", help="feature store directory")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; a failed verification is an InputError (exit 2)."""
    from ..errors import InputError
    from ..store.store_tools import merge_store, verify_store

    if args.action == "merge":
        report = merge_store(args.store)
        print(
            f"merged {report.parts} part(s): {report.shards} shard(s), {report.videos} "
            f"video(s) added, {len(report.duplicates)} duplicate(s) dropped -> {args.store}"
        )
        return 0
    from tqdm import tqdm

    with tqdm(desc="verify", unit="file", disable=args.quiet, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = verify_store(args.store, progress)
    for bad in report.bad:
        print(f"sseg store verify: {bad}", file=sys.stderr)
    if report.bad:
        raise InputError(f"{len(report.bad)} of {report.files} shard file(s) failed", args.store)
    note = ""
    if report.unverified:
        note = f" ({len(report.unverified)} without a recorded checksum: size and shape only)"
    print(f"ok: {report.files} shard file(s), {report.bytes / 1e6:.1f} MB verified{note}")
    return 0
