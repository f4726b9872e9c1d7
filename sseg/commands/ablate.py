"""``sseg ablate``: evaluate one model with test-time splitting at several tau values."""

from __future__ import annotations

import argparse
import json

NAME = "ablate"
HELP = "Evaluate a model for test-time split thresholds tau (default: none, 60, 30, 10 s)."


def _taus(text: str) -> list[float | None]:
    out: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item in ("none", "off"):
            out.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"tau must be 'none' or seconds, got {item!r}"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"tau must be positive, got {value}")
        out.append(value)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg ablate``."""
    from .evaluate import add_source_arguments

    parser.add_argument("--model", required=True, help="SceneModel checkpoint (.safetensors)")
    add_source_arguments(parser)
    parser.add_argument(
        "--taus",
        type=_taus,
        default=[None, 60.0, 30.0, 10.0],
        help="comma list, e.g. none,60,30,10",
    )


def _name(tau: float | None) -> str:
    return "none" if tau is None else f"{tau:g}"


def run(args: argparse.Namespace) -> int:
    """One evaluation per tau; prints a table and optionally writes JSON."""
    from ..atomic import atomic_write_text
    from ..data.annotations import load_labels, select_videos
    from ..errors import InputError
    from ..evaluation import format_table, predict_store, score
    from ..features import FeatureStore
    from ..model import SceneModel
    from .evaluate import check_common

    check_common(args)
    if args.features is None:
        raise InputError("--features (a feature store) is required")
    store = FeatureStore(args.features)
    model = SceneModel.load(args.model, args.device)
    videos = select_videos(store, args.split, args.subset)
    labels = load_labels(args.labels, store, videos)
    videos = [v for v in videos if v in labels]
    rows, results = [], []
    for tau in args.taus:
        probs, split = predict_store(model, store, videos, tau, args.split_n, args.device)
        result = score(probs, labels, store, args.threshold)
        result.pop("per_video")
        result.update(tau=tau, split_n=args.split_n, shots_split=sum(split.values()))
        results.append(result)
        rows.append((_name(tau), result))
    print(format_table(rows, first="tau (s)"))
    if args.json_out:
        report = {"model": args.model, "threshold": args.threshold, "results": results}
        atomic_write_text(args.json_out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0
