"""``sseg evaluate``: score a model (or a predictions file) on a benchmark's labelled shots."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "evaluate"
HELP = "Score scene-boundary predictions: AP(total), AP(avg), F1, mIoU, Recall, Recall@3s."


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Data options shared with ``sseg ablate``."""
    parser.add_argument("--features", help="feature store folder (shots, times, store labels)")
    parser.add_argument(
        "--labels",
        help="MovieNet-SSeg root (label318/, shot_movie318/), BBC Planet Earth root "
        "(annotations/), or a JSON-lines shot file; default: the store's labels",
    )
    parser.add_argument(
        "--split", help="split318.json (or the folder holding it or meta/split318.json)"
    )
    parser.add_argument("--subset", default="test", help="subset of --split (default test)")
    parser.add_argument("--split-n", type=int, default=3, help="sub-shots per long shot")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_out", help="write the results as JSON here")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg evaluate``."""
    from ..evaluation.metrics import PROTOCOLS

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="SceneModel checkpoint (.safetensors)")
    source.add_argument(
        "--predictions",
        help='JSON lines {"video", "shot", "prob"}: one line per shot or per labelled shot',
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="bassl",
        help="bassl (default): F1 at prob >= threshold, Recall/Recall@3s/mIoU at prob > "
        "threshold (BaSSL's argmax); inclusive: prob >= threshold everywhere",
    )
    parser.add_argument(
        "--clip-info",
        help="MovieChat-1K annotation folder (gt/ or jsons/): check a JSON-lines --labels "
        "file's clips against their fps and length",
    )
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


def _video_row(row: dict) -> dict:
    """A per-video result as a table row: its AP is both AP(total) and AP(avg)."""
    return {**row, "AP(total)": row["AP"], "AP(avg)": row["AP"]}


def _note(what: str, ids: list[str]) -> None:
    print(f"note: {len(ids)} {what} (e.g. {ids[0]})", file=sys.stderr)


def _predict(args: argparse.Namespace, store, benchmark, report: dict) -> dict:
    """Model predictions over the store's selected, labelled videos (dense, per shot)."""
    from ..data.annotations import select_videos
    from ..evaluation.scoring import dense_predictions, predict_store
    from ..modeling.model import SceneModel

    tau = None if args.no_split else args.tau
    model = SceneModel.load(args.model, args.device)
    wanted = set(benchmark.video_ids)
    videos = [v for v in select_videos(store, args.split, args.subset) if v in wanted]
    probs, split = predict_store(model, store, videos, tau, args.split_n, args.device)
    report.update(model=args.model, tau=tau, split_n=args.split_n, shots_split=sum(split.values()))
    if args.save_predictions:
        from ..data.predictions import write_predictions

        write_predictions(args.save_predictions, probs)
    return dense_predictions(probs)


def _print_scores(args: argparse.Namespace, scores) -> None:
    """The metric table (per video, per annotator, summary) and a counts line."""
    from ..evaluation.scoring import BENCHMARK_COLUMNS, format_table

    several = len(scores.results) > 1
    rows = []
    if args.per_video:
        for annotator, result in scores.results.items():
            prefix = f"{annotator}/" if several else ""
            rows += [(prefix + v, _video_row(r)) for v, r in sorted(result["per_video"].items())]
    if several:
        rows += list(scores.results.items())
    rows.append(("mean" if several else "all", scores.summary))
    print(format_table(rows, first="video", columns=BENCHMARK_COLUMNS))
    summary = scores.summary
    line = f"{summary['videos']} videos, {summary['shots']} labelled shots, "
    if several:
        line += f"{len(scores.results)} annotators, {summary['boundaries']:.1f} boundaries each"
    else:
        line += f"{summary['boundaries']} boundaries"
    print(f"{line} (protocol {args.protocol})")


def run(args: argparse.Namespace) -> int:
    """Predict (or read predictions), score, print a table, optionally write JSON."""
    from ..atomic import atomic_write_text
    from ..data.annotations import select_videos
    from ..data.benchmark import open_benchmark, store_benchmark
    from ..errors import InputError
    from ..evaluation.scoring import score_benchmark
    from ..store.features import FeatureStore

    check_common(args)
    if not args.no_split and args.tau <= 0:
        raise InputError(f"--tau must be positive seconds, got {args.tau}")
    if args.features is None and args.labels is None:
        raise InputError("give --labels (an annotation root or file), --features, or both")
    if args.features is None and args.model:
        raise InputError("--model needs --features (a feature store)")
    store = FeatureStore(args.features) if args.features else None
    report: dict = {"threshold": args.threshold, "protocol": args.protocol}
    if args.labels is not None:
        benchmark = open_benchmark(args.labels, args.split, args.subset, args.clip_info)
    else:
        if args.clip_info:
            raise InputError("--clip-info needs --labels, a MovieChat-SSeg JSON-lines file")
        benchmark = store_benchmark(store, select_videos(store, args.split, args.subset))
    if args.predictions:
        from ..data.predictions import read_prediction_shots

        predictions = read_prediction_shots(args.predictions)
        report["predictions"] = args.predictions
    else:
        predictions = _predict(args, store, benchmark, report)
    scores = score_benchmark(
        predictions, benchmark, store, args.threshold, args.protocol, args.predictions
    )
    report.update(benchmark=benchmark.kind, labels=str(benchmark.source), metrics=scores.summary)
    if len(scores.results) > 1:
        report["annotators"] = scores.results  # summary: their mean
    report.update(unscored=scores.unscored, missing=scores.missing)
    if scores.unscored:
        _note("predicted video(s) have no labels here and are not scored", scores.unscored)
    if scores.missing and (args.split or benchmark.kind not in ("movienet", "store")):
        _note("labelled video(s) have no predictions and are not scored", scores.missing)
    _print_scores(args, scores)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0
