"""``sseg evaluate``: score a model (or a predictions file) on labelled shots."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "evaluate"
HELP = "Score scene-boundary predictions: AP, F1, mIoU, Recall, Recall@3s."


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Data options shared with ``sseg ablate``."""
    parser.add_argument("--features", help="feature store folder (shots, times, store labels)")
    parser.add_argument(
        "--labels", help="MovieNet root (label318/) or JSON-lines shots; default: store labels"
    )
    parser.add_argument("--split", help="split318.json (or its folder) selecting the videos")
    parser.add_argument("--subset", default="test", help="subset of --split (default test)")
    parser.add_argument("--split-n", type=int, default=3, help="sub-shots per long shot")
    parser.add_argument("--threshold", type=float, default=0.5, help="boundary if prob >= this")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_out", help="write the results as JSON here")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg evaluate``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="SceneModel checkpoint (.safetensors)")
    source.add_argument(
        "--predictions", help='JSON lines {"video", "shot", "prob"} to score instead of a model'
    )
    add_source_arguments(parser)
    parser.add_argument("--tau", type=float, default=10.0, help="split shots longer than this (s)")
    parser.add_argument("--no-split", action="store_true", help="no test-time shot splitting")
    parser.add_argument("--per-video", action="store_true", help="also print one row per video")
    parser.add_argument("--save-predictions", help="write per-shot probabilities (JSON lines)")


def check_common(args: argparse.Namespace) -> None:
    """Validate options shared with ``sseg ablate``."""
    from ..errors import InputError

    if args.split_n < 1:
        raise InputError(f"--split-n must be at least 1, got {args.split_n}")
    if not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {args.threshold}")


def _from_jsonl(args: argparse.Namespace, probs: dict) -> dict:
    """Score predictions against a JSON-lines annotation (no feature store)."""
    from .. import metrics
    from ..data.jsonl import load_jsonl
    from ..data.movienet import load_movienet_split
    from ..errors import InputError

    seqs = {s.video_id: s for s in load_jsonl(args.labels) if s.labels is not None}
    if args.split:
        wanted = set(load_movienet_split(args.split).get(args.subset, []))
        seqs = {k: v for k, v in seqs.items() if k in wanted}
    common = [vid for vid in seqs if vid in probs]
    if not common:
        raise InputError("no video has both predictions and labels", args.labels)
    for vid in common:
        if len(probs[vid]) != len(seqs[vid]):
            problem = f"video {vid!r}: {len(probs[vid])} predictions for {len(seqs[vid])} shots"
            raise InputError(problem, args.predictions)
    return metrics.evaluate(
        {v: probs[v] for v in common},
        {v: seqs[v].labels for v in common},
        {v: (seqs[v].starts, seqs[v].ends) for v in common},
        args.threshold,
    )


def run(args: argparse.Namespace) -> int:
    """Predict (or read predictions), score, print a table, optionally write JSON."""
    from ..atomic import atomic_write_text
    from ..errors import InputError
    from ..evaluation import format_table, predict_store

    check_common(args)
    tau = None if args.no_split else args.tau
    if tau is not None and tau <= 0:
        raise InputError(f"--tau must be positive seconds, got {tau}")
    report: dict = {"threshold": args.threshold}
    if args.predictions:
        from ..data.predictions import read_predictions

        probs = read_predictions(args.predictions)
        report["predictions"] = args.predictions
        if args.features is None:
            if not args.labels or not str(args.labels).endswith((".jsonl", ".json")):
                raise InputError("without --features, --labels must be a JSON-lines shot file")
            result = _from_jsonl(args, probs)
        else:
            result = _score_store(args, probs)
    else:
        if args.features is None:
            raise InputError("--model needs --features (a feature store)")
        from ..data.annotations import select_videos
        from ..features import FeatureStore
        from ..model import SceneModel

        store = FeatureStore(args.features)
        model = SceneModel.load(args.model, args.device)
        videos = select_videos(store, args.split, args.subset)
        probs, split = predict_store(model, store, videos, tau, args.split_n, args.device)
        report.update(
            model=args.model, tau=tau, split_n=args.split_n, shots_split=sum(split.values())
        )
        result = _score_store(args, probs)
        if args.save_predictions:
            from ..data.predictions import write_predictions

            write_predictions(args.save_predictions, probs)
    report["metrics"] = result
    unscored = sorted(set(probs) - set(result["per_video"]))
    if unscored:
        report["unscored"] = unscored
        print(
            f"note: {len(unscored)} predicted video(s) have no labels here and are not scored "
            f"(e.g. {unscored[0]})",
            file=sys.stderr,
        )
    rows = [("all", result)]
    if args.per_video:
        rows = [*sorted(result["per_video"].items()), *rows]
    print(format_table(rows, first="video"))
    print(
        f"{result['videos']} videos, {result['shots']} labelled shots, "
        f"{result['boundaries']} boundaries"
    )
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def _score_store(args: argparse.Namespace, probs: dict) -> dict:
    from ..data.annotations import load_labels, select_videos
    from ..evaluation import score
    from ..features import FeatureStore

    store = FeatureStore(args.features)
    videos = [v for v in select_videos(store, args.split, args.subset) if v in probs]
    labels = load_labels(args.labels, store, videos)
    return score(probs, labels, store, args.threshold)
