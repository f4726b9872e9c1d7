"""``sseg extract``: videos or keyframe folders -> a feature store of frozen CLIP features."""

from __future__ import annotations

import argparse

NAME = "extract"
HELP = (
    "Encode videos or MovieNet-style keyframe folders with the frozen CLIP ViT-B/32 into a "
    "feature store (resumable: videos already stored are skipped; run under torchrun to "
    "split the inputs across processes, GPUs and machines)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg extract``."""
    parser.add_argument("inputs", nargs="+", help="video files and/or keyframe folders")
    parser.add_argument("--out", required=True, help="feature store directory")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--clip-weights", help="local CLIP ViT-B/32 checkpoint file")
    weights.add_argument(
        "--random-init",
        action="store_true",
        help="randomly initialised backbone (tests/demo only: features are not semantic)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="backbone precision: autocast bf16/fp16 on CUDA; auto = bf16 on CUDA, fp32 on CPU",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decode/keyframe worker processes (default: 0 on CPU, 4 on CUDA)",
    )
    parser.add_argument("--movienet", help="MovieNet annotation root (shot_movie318/, meta/)")
    parser.add_argument("--timings", help="JSON lines shot annotations (see sseg.data.jsonl)")
    parser.add_argument(
        "--placeholder-seconds",
        type=float,
        default=1.0,
        help="shot length stored for keyframe folders without timings (default 1)",
    )
    parser.add_argument(
        "--detector",
        default="transnetv2",
        choices=("transnetv2", "content"),
        help="shot detector for video inputs (default: transnetv2; as in sseg segment)",
    )
    parser.add_argument(
        "--detector-threshold",
        type=float,
        metavar="X",
        help="transition threshold (transnetv2: 0.5, content: 27)",
    )
    parser.add_argument(
        "--min-shot-len",
        type=int,
        default=15,
        metavar="FRAMES",
        help="content detector: minimum shot length in frames (default: 15)",
    )
    parser.add_argument(
        "--shard-size", type=int, default=20_000, help="shots per store shard (default 20000)"
    )
    parser.add_argument(
        "--flush-minutes",
        type=float,
        default=5.0,
        help="write pending videos as a shard at least this often (default 5; 0: per video)",
    )
    parser.add_argument(
        "--skip-bad-videos",
        action="store_true",
        help="report and skip videos that cannot be decoded or read instead of stopping",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Extract (this rank's share under torchrun); print a one-line summary."""
    from ..errors import InputError
    from ..segmentation.keyframe_features import resolve_device
    from ..store.extract import KeyframeEncoder, TimingSource, extract
    from ..training.loop import die_with_launcher, dist_env, sigterm_as_interrupt

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.shard_size < 1:
        raise InputError(f"--shard-size must be >= 1, got {args.shard_size}")
    if args.min_shot_len < 1:
        raise InputError(f"--min-shot-len must be >= 1, got {args.min_shot_len}")
    if not args.placeholder_seconds > 0:
        raise InputError("--placeholder-seconds must be > 0")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be >= 0, got {args.workers}")
    if args.flush_minutes < 0:
        raise InputError(f"--flush-minutes must be >= 0, got {args.flush_minutes}")
    dist = dist_env()
    device = resolve_device(args.device)
    if device == "cuda" and dist.enabled:
        device = f"cuda:{dist.local_rank}"
    cuda = device.startswith("cuda")
    precision = ("bf16" if cuda else "fp32") if args.precision == "auto" else args.precision
    workers = (4 if cuda else 0) if args.workers is None else args.workers
    timings = TimingSource(args.movienet, args.timings)
    weights = None if args.random_init else args.clip_weights

    def make_encoder() -> KeyframeEncoder:
        return KeyframeEncoder(weights, device, args.batch_size, precision=precision)

    sigterm_as_interrupt()  # torchrun stopping a rank: flush its finished videos first
    die_with_launcher()  # ... and also when the launcher itself is killed
    report = extract(
        args.inputs, args.out, make_encoder, timings, args.detector, device,
        shard_size=args.shard_size, placeholder_seconds=args.placeholder_seconds,
        progress=not args.quiet, detector_threshold=args.detector_threshold,
        min_shot_frames=args.min_shot_len, workers=workers,
        skip_bad_videos=args.skip_bad_videos, flush_seconds=60 * args.flush_minutes,
        dist=dist,
    )  # fmt: skip
    who = f"rank {dist.rank}/{dist.world_size}: " if dist.enabled else ""
    bad = f", {len(report.bad)} bad video(s) skipped" if args.skip_bad_videos else ""
    merged = " (merged the index)" if report.merged else ""
    print(
        f"{who}extracted {len(report.added)} video(s), skipped {len(report.skipped)} already "
        f"stored{bad} -> {args.out}{merged}"
    )
    return 0
