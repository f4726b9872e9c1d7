"""Videos or keyframe folders -> frozen CLIP keyframe features in a feature store.

Inputs (see docs/pretraining.md):

* a video file: shots detected (:func:`sseg.segmentation.pipeline.detect_shots`), 3 keyframes per
  shot at the centres of the shot's thirds
  (:func:`sseg.segmentation.keyframes.keyframes_for_shots`);
* a keyframe folder in MovieNet's naming, ``<video_id>/shot_XXXX_img_{0,1,2}.jpg``: either
  the folder of one video or a root holding one such folder per video. Shot timings
  come from a MovieNet annotation root (``shot_movie318/<id>.txt``), a JSON lines file
  (:func:`sseg.data.load_jsonl`), or - if neither knows the video - a placeholder of
  ``placeholder_seconds`` per shot (reported).

Videos already in the store are skipped, so an interrupted extraction resumes. Under
``torchrun`` each rank extracts its share of the inputs into its own shards (see
:func:`extract` and docs/pretraining.md); decoding runs in DataLoader workers
(:mod:`sseg.store.keyframe_loader`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..shots import ShotSequence
from ..training.loop import DistInfo
from .features import FeatureStoreWriter

KEYFRAME_RE = re.compile(r"^shot_(\d+)_img_(\d+)\.(jpe?g|png)$", re.IGNORECASE)
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v", ".mpg", ".mpeg"}


@dataclass
class Source:
    """One video to extract: a video file, or a folder of keyframe images."""

    video_id: str
    path: Path
    kind: str  # "video" | "keyframes"


def _keyframe_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and KEYFRAME_RE.match(p.name))


def find_sources(inputs: Sequence[str | Path]) -> list[Source]:
    """Expand inputs into videos; duplicate ids are an error."""
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise InputError(f"not a video file (suffix {path.suffix!r})", path)
            sources.append(Source(path.stem, path, "video"))
        elif path.is_dir():
            if _keyframe_files(path):
                sources.append(Source(path.name, path, "keyframes"))
                continue
            subdirs = sorted(p for p in path.iterdir() if p.is_dir() and _keyframe_files(p))
            if not subdirs:
                raise InputError("folder holds no shot_XXXX_img_N.jpg keyframes", path)
            sources += [Source(p.name, p, "keyframes") for p in subdirs]
        else:
            raise InputError("input not found", path)
    seen: dict[str, Path] = {}
    for s in sources:
        if s.video_id in seen:
            raise InputError(f"video id {s.video_id!r} also comes from {seen[s.video_id]}", s.path)
        seen[s.video_id] = s.path
    return sources


def keyframe_grid(folder: Path, k: int = 3) -> list[list[Path]]:
    """``[shot][j]`` image paths; shots must be numbered 0..N-1, each with images 0..k-1."""
    grid: dict[int, dict[int, Path]] = {}
    for p in _keyframe_files(folder):
        match = KEYFRAME_RE.match(p.name)
        assert match is not None
        grid.setdefault(int(match.group(1)), {})[int(match.group(2))] = p
    shots = sorted(grid)
    if shots != list(range(len(shots))):
        missing = sorted(set(range(max(shots) + 1)) - set(shots))
        raise InputError(f"keyframes of shot(s) {missing[:5]} are missing", folder)
    out = []
    for s in shots:
        if any(j not in grid[s] for j in range(k)):
            raise InputError(f"shot {s} needs images img_0..img_{k - 1}", folder)
        out.append([grid[s][j] for j in range(k)])
    return out


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); a clear error for an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read keyframe image ({exc})", path) from exc


class TimingSource:
    """Shot timings (and labels/genres) for keyframe folders, by video id."""

    def __init__(self, movienet: str | Path | None = None, jsonl: str | Path | None = None):
        self.movienet = None if movienet is None else Path(movienet)
        self.sequences: dict[str, ShotSequence] = {}
        if jsonl is not None:
            from ..data import load_jsonl

            self.sequences = {s.video_id: s for s in load_jsonl(jsonl)}

    def get(self, video_id: str) -> ShotSequence | None:
        """The annotation of ``video_id``, or None if no source knows it."""
        if video_id in self.sequences:
            return self.sequences[video_id]
        if (
            self.movienet is not None
            and (self.movienet / "shot_movie318" / f"{video_id}.txt").is_file()
        ):
            from ..data import load_movienet

            return load_movienet(self.movienet, video_id)
        return None


class KeyframeEncoder:
    """Frozen CLIP ViT-B/32 image tower: RGB uint8 images -> (M, D) features.

    ``precision``: ``fp32``, or ``bf16``/``fp16`` autocast on CUDA (half precision on a
    CPU falls back to fp32). Inputs are copied to the device without blocking (pinned by
    the loader).
    """

    def __init__(
        self,
        clip_weights: str | Path | None,
        device: str = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
    ):
        import warnings

        from ..modeling.clip_backbone import NotSemanticWarning, load_clip
        from ..modeling.encoder import ShotEncoder
        from ..modeling.genres import genre_embeddings, image_tower_fingerprint
        from ..segmentation.keyframe_features import PRECISIONS, resolve_precision

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotSemanticWarning)
            model, self.preprocess, tokenizer = load_clip(clip_weights, device=device)
        self.model_id = getattr(model, "sseg_model_id", "ViT-B-32")
        # The id of a checkpoint file names its path and mtime; this names its weights.
        self.weights_fingerprint: str | None = image_tower_fingerprint(model)
        self.genre_bank = genre_embeddings(model, tokenizer)
        self.encoder = ShotEncoder(model, self.genre_bank, batch_size=batch_size)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.precision, _ = resolve_precision(precision, str(device))
        if self.device.type != "cuda":
            self.precision = "fp32"  # features cached for training stay exact fp32 on a CPU
        self._autocast_dtype = PRECISIONS[self.precision]

    @torch.no_grad()
    def encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP inputs (M, 3, 224, 224) -> (M, D) float32 features, left on the device."""
        backbone = self.encoder.backbone
        param = next(backbone.parameters())
        x = images.to(param.device, non_blocking=True).to(param.dtype)
        autocast = param.device.type == "cuda" and self._autocast_dtype != torch.float32
        with torch.autocast(param.device.type, dtype=self._autocast_dtype, enabled=autocast):
            return backbone.encode_image(x).float()

    def encode(self, images: Iterator[np.ndarray] | Sequence[np.ndarray]) -> torch.Tensor:
        """Features of the images, preprocessed and encoded batch by batch."""
        from ..modeling.encoder import preprocess_frames

        out, chunk = [], []
        for image in images:
            chunk.append(image)
            if len(chunk) == self.batch_size:
                out.append(self.encode_batch(preprocess_frames(chunk, self.preprocess)))
                chunk = []
        if chunk:
            out.append(self.encode_batch(preprocess_frames(chunk, self.preprocess)))
        return torch.cat(out).cpu() if out else torch.zeros(0, self.encoder.dim)


@dataclass
class ExtractReport:
    """What an extraction (one rank of it) did."""

    added: list[str]
    skipped: list[str]
    placeholder_timings: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (video id, error), skipped
    merged: bool = False  # this rank merged every rank's part into index.json


def extract(
    inputs: Sequence[str | Path],
    store: str | Path,
    make_encoder: Callable[[], KeyframeEncoder],
    timings: TimingSource | None = None,
    detector: str = "transnetv2",
    device: str = "cpu",
    keyframes: int = 3,
    shard_size: int = 20_000,
    placeholder_seconds: float = 1.0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    detector_threshold: float | None = None,
    min_shot_frames: int = 15,
    workers: int = 0,
    skip_bad_videos: bool = False,
    flush_seconds: float | None = 300.0,
    dist: DistInfo | None = None,
) -> ExtractReport:
    """Encode every input not yet in ``store`` and append it; returns a report.

    Inputs are checked (keyframe folders complete) before ``make_encoder`` loads the
    backbone, which happens only if some video is not stored yet. ``detector``,
    ``detector_threshold`` and ``min_shot_frames`` mean what they mean for ``sseg segment``
    (:func:`sseg.segmentation.pipeline.detect_shots`), so both find the same shots in a video.

    Distributed (``dist.world_size`` > 1, e.g. from :func:`sseg.training.loop.dist_env` under
    ``torchrun``): rank r takes inputs r, r + world, ... of the expanded input list, writes
    its own shards and index part, resumes them after a kill, and the last rank to finish
    merges all parts into ``index.json``. ``workers`` > 0 decodes in that many DataLoader
    processes (shot detection there runs on the CPU). ``skip_bad_videos``: a video that
    cannot be decoded or read is reported and skipped instead of stopping the run.
    ``flush_seconds``: pending videos are written as a shard at least this often.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    dist = dist or DistInfo()
    sources = find_sources(inputs)
    mine = [(pos, s) for pos, s in enumerate(sources) if pos % dist.world_size == dist.rank]
    timings = timings or TimingSource()
    report = ExtractReport([], [], [])
    grids: dict[str, list[list[Path]]] = {}
    for _, source in mine:
        if source.kind != "video":
            try:
                grids[source.video_id] = keyframe_grid(source.path, keyframes)
            except InputError as exc:
                if not skip_bad_videos:
                    raise
                report.bad.append((source.video_id, str(exc)))
    rank = None if dist.world_size == 1 else dist.rank
    bad_ids = {video_id for video_id, _ in report.bad}
    with FeatureStoreWriter(
        store, shard_size=shard_size, rank=rank, flush_seconds=flush_seconds
    ) as writer:
        todo = [(p, s) for p, s in mine if not writer.has(s.video_id) and s.video_id not in bad_ids]
        report.skipped = [s.video_id for _, s in mine if writer.has(s.video_id)]
        if report.skipped:
            log(f"{len(report.skipped)} video(s) already in the store: skipped")
        if todo:
            encoder = make_encoder()
            _check_backbone(writer.meta, encoder, store)
            writer.meta.setdefault("backbone", encoder.model_id)
            fingerprint = getattr(encoder, "weights_fingerprint", None)
            if fingerprint is not None:
                writer.meta.setdefault("backbone_weights", fingerprint)
            writer.meta["genre_bank"] = "genre_bank.npy"
            _save_bank(Path(store) / "genre_bank.npy", encoder.genre_bank)
            detect = {"detector": detector, "threshold": detector_threshold,
                      "min_shot_frames": min_shot_frames,
                      "device": "cpu" if workers > 0 else device}  # fmt: skip
            _encode_all(writer, todo, grids, encoder, timings, placeholder_seconds, keyframes,
                        detect, workers, skip_bad_videos, progress, report)  # fmt: skip
    report.merged = writer.merged
    _log_notes(report, sources, timings, placeholder_seconds, log)
    return report


def _encode_all(
    writer: FeatureStoreWriter,
    todo: list[tuple[int, Source]],
    grids: dict[str, list[list[Path]]],
    encoder: KeyframeEncoder,
    timings: TimingSource,
    placeholder_seconds: float,
    keyframes: int,
    detect: dict[str, Any],
    workers: int,
    skip_bad_videos: bool,
    progress: bool,
    report: ExtractReport,
) -> None:
    """Encode the chunks the loader yields; add finished videos in input order."""
    from tqdm import tqdm

    from .keyframe_loader import KeyframeChunks, chunk_loader

    sources = [s for _, s in todo]
    dataset = KeyframeChunks(sources, grids, encoder.preprocess, encoder.batch_size, keyframes,
                             detect)  # fmt: skip
    pin = torch.device(getattr(encoder, "device", "cpu")).type == "cuda"
    parts: dict[int, list[torch.Tensor]] = {}
    infos: dict[int, dict[str, Any]] = {}
    done: dict[int, torch.Tensor | None] = {}
    next_item = 0
    with tqdm(total=len(todo), desc="extract", unit="video", disable=not progress) as bar:
        for chunk in chunk_loader(dataset, workers, pin):
            item = chunk.item
            if chunk.error is not None:
                if not skip_bad_videos:
                    raise chunk.error
                report.bad.append((sources[item].video_id, str(chunk.error)))
                parts.pop(item, None)
                done[item] = None
            else:
                if chunk.first == 0:
                    infos[item], parts[item] = chunk.info, []
                parts[item].append(encoder.encode_batch(chunk.images))
                if chunk.last:
                    done[item] = torch.cat(parts.pop(item)).cpu()
            while next_item in done:
                feats = done.pop(next_item)
                if feats is not None:
                    _add(writer, todo[next_item], grids, feats, infos.pop(next_item), timings,
                         placeholder_seconds, skip_bad_videos, report)  # fmt: skip
                next_item += 1
                bar.update(1)


def _add(writer, todo_item, grids, feats, info, timings, placeholder_seconds, skip_bad, report):
    """Store one encoded video (timings from the detector, an annotation or placeholders)."""
    position, source = todo_item
    n = int(info["count"])
    feats = feats.reshape(n, -1, feats.shape[-1]).numpy()
    try:
        if source.kind == "video":
            writer.add(source.video_id, feats, info["starts"], info["ends"], fps=info["fps"],
                       position=position)  # fmt: skip
        else:
            seq = timings.get(source.video_id)
            if seq is not None and len(seq) != n:
                raise InputError(
                    f"{source.video_id}: {n} shots of keyframes but the annotation has {len(seq)}",
                    source.path,
                )
            if seq is None:
                starts = np.arange(n) * placeholder_seconds
                ends, labels, genres, fps = starts + placeholder_seconds, None, None, None
                report.placeholder_timings.append(source.video_id)
            else:
                starts, ends, genres, fps = seq.starts, seq.ends, seq.genres, seq.fps
                labels = seq.labels
            writer.add(source.video_id, feats, starts, ends, genres, labels, fps,
                       position=position)  # fmt: skip
    except InputError as exc:
        if not skip_bad:
            raise
        report.bad.append((source.video_id, str(exc)))
        return
    report.added.append(source.video_id)


def _log_notes(report, sources, timings, placeholder_seconds, log) -> None:
    added = set(report.added)
    ignored = [
        s.video_id
        for s in sources
        if s.kind == "video" and s.video_id in added and timings.get(s.video_id) is not None
    ]
    if ignored:
        log(
            f"annotations for {len(ignored)} video file(s) (e.g. {ignored[0]}) are not stored: "
            "shots of video files come from the shot detector; pass the labels to "
            "sseg finetune/evaluate --labels"
        )
    if report.placeholder_timings:
        log(
            f"no shot timings for {len(report.placeholder_timings)} video(s) "
            f"(e.g. {report.placeholder_timings[0]}): stored {placeholder_seconds:g} s per shot, "
            "so duration-aware sampling treats their shots as equally long"
        )
    for video_id, problem in report.bad:
        log(f"skipped bad video {video_id}: {problem}")


def _check_backbone(meta: dict[str, Any], encoder: KeyframeEncoder, store: str | Path) -> None:
    """Refuse to add features of another backbone to a store.

    Compares the image-tower weights fingerprint when the store and the encoder both
    have one (so a copied, moved or touched checkpoint file still resumes its store),
    else the backbone ids.
    """
    backbone = meta.get("backbone")
    if backbone is None:
        return
    stored, current = meta.get("backbone_weights"), getattr(encoder, "weights_fingerprint", None)
    same = stored == current if stored and current else backbone == encoder.model_id
    if not same:
        raise InputError(
            f"store was extracted with backbone {backbone!r}, not {encoder.model_id!r}", store
        )


def _save_bank(path: Path, bank: torch.Tensor) -> None:
    from ..training.synthetic import save_genre_bank

    save_genre_bank(path, bank.float().cpu().numpy())
