"""Keyframe images -> frozen CLIP image features, on CPU or GPU, in batches.

The backbone comes from :func:`sseg.modeling.clip_backbone.load_image_tower` (image side only,
no open_clip: what ``sseg segment`` uses) or :func:`sseg.modeling.clip_backbone.load_clip` (the
full model, for callers that need the text tower too); ``clip_weights=None`` gives a
randomly initialised ViT-B/32, deterministic for a given ``seed`` (the demo model's
backbone), with the same weights either way.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .precision import PRECISIONS, resolve_precision

__all__ = [
    "PRECISIONS",
    "KeyframeEncoding",
    "encode_collected_keyframes",
    "encode_keyframes",
    "encode_video_keyframes",
    "load_backbone",
    "resolve_device",
    "resolve_precision",
]

MODEL_NAME = "ViT-B-32"


def resolve_device(device: str | None) -> str:
    """``auto``/None -> cuda if available else cpu; ``cuda`` without a GPU is an error."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available (use cpu)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return device


def load_backbone(
    clip_weights: str | Path | None = None, seed: int | None = None, device: str = "cpu"
):
    """Frozen CLIP ViT-B/32 from :func:`~sseg.modeling.clip_backbone.load_clip`: (model, preprocess,
    tok).

    The full open_clip model (image and text towers); for images only, use the cheaper
    :func:`load_image_backbone`. ``clip_weights``: a local checkpoint file; None = random
    init with ``seed`` (load_clip's default seed when None).
    """
    from ..modeling.clip_backbone import load_clip

    return _quietly(load_clip, clip_weights, seed, device)


def load_image_backbone(
    clip_weights: str | Path | None = None,
    seed: int | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """The image side of :func:`load_backbone` without open_clip: (tower, preprocess).

    Same weights and ``sseg_model_id``, held in ``dtype``; see
    :func:`sseg.modeling.clip_backbone.load_image_tower`.
    """
    from ..modeling.clip_backbone import load_image_tower

    return _quietly(load_image_tower, clip_weights, seed, device, dtype=dtype)


def _quietly(
    loader, clip_weights: str | Path | None, seed: int | None, device: str, **options: Any
):
    """``loader(weights, MODEL_NAME, device[, seed], **options)`` without random-init
    warnings/logs."""
    from ..modeling.clip_backbone import NotSemanticWarning

    if clip_weights is not None and not Path(clip_weights).is_file():
        raise InputError("CLIP weights file not found", clip_weights)
    kwargs = {} if seed is None or clip_weights is not None else {"seed": int(seed)}
    kwargs.update(options)
    root = logging.getLogger()  # open_clip logs "no pretrained weights" at WARNING
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotSemanticWarning)
            pretrained = None if clip_weights is None else str(clip_weights)
            return loader(pretrained, MODEL_NAME, device, **kwargs)
    finally:
        root.setLevel(level)


@torch.no_grad()
def encode_keyframes(
    model,
    preprocess,
    keyframes: np.ndarray,
    device: str = "cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    quiet: bool = True,
) -> torch.Tensor:
    """uint8 keyframes (N, K, H, W, 3) -> float32 CLIP image features (N, K, D) on CPU.

    Preprocessing and encoding are those of ``sseg extract`` (open_clip's transform,
    :meth:`ShotEncoder.encode_keyframes` math), so features match cached ones.
    """
    from tqdm import tqdm

    from ..modeling.encoder import preprocess_frames

    n, k = keyframes.shape[:2]
    flat = keyframes.reshape(n * k, *keyframes.shape[2:])
    dtype = PRECISIONS[precision]
    use_autocast = device.startswith("cuda") and dtype != torch.float32
    out = []
    with tqdm(
        total=len(flat), desc="encoding", unit="img", file=sys.stderr, disable=quiet, leave=False
    ) as bar:
        for start in range(0, len(flat), max(1, batch_size)):
            chunk = list(flat[start : start + batch_size])
            batch = preprocess_frames(chunk, preprocess).to(device)
            with torch.autocast("cuda", dtype=dtype, enabled=use_autocast):
                feats = model.encode_image(batch)
            out.append(feats.float().cpu())
            bar.update(len(batch))
    features = torch.cat(out) if out else torch.zeros(0, 512)
    return features.reshape(n, k, -1)


class KeyframeEncoding:
    """CLIP features of keyframe pictures handed over in any order, encoded in batches.

    Features are kept per frame index (a frame shared by two keyframe slots is encoded
    once); :meth:`assemble` lays them out per shot. Memory: one batch of pictures, one
    feature vector per keyframe and a small thumbnail per middle keyframe. With
    ``background`` the batches are encoded in a worker thread (torch releases the GIL),
    so a caller that feeds pictures while it runs another model keeps both cores busy;
    :meth:`close` (or :meth:`assemble`) waits for it.
    """

    def __init__(
        self,
        model,
        preprocess,
        device: str = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
        thumbnail_height: int | None = 96,
        background: bool = False,
    ):
        self.model, self.preprocess, self.device = model, preprocess, device
        self.batch_size = max(1, batch_size)
        self.dtype = PRECISIONS[precision]
        self.thumbnail_height = thumbnail_height
        self.features: dict[int, torch.Tensor] = {}
        self.thumbnails: dict[int, np.ndarray] = {}
        self._batch: dict[int, np.ndarray] = {}
        self.on_encoded = None  # called with the number of pictures each batch encoded
        self._worker = None
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(1, thread_name_prefix="sseg-encode")
        self._running: list = []
        self._sent: set[int] = set()  # indices handed to the worker (features may be pending)

    def add(self, index: int, rgb: np.ndarray, thumbnail: bool = False) -> None:
        """Queue frame ``index``'s picture; ``thumbnail``: also keep a small copy for reports."""
        if thumbnail and self.thumbnail_height and index not in self.thumbnails:
            self.thumbnails[index] = _thumbnail(rgb, self.thumbnail_height)
        if index in self._sent:
            return
        self._sent.add(index)
        self._batch[index] = rgb
        if len(self._batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Encode the queued pictures (in the worker thread with ``background``)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, {}
        if self._worker is None:
            self._encode(batch)
        else:
            self._running = [job for job in self._running if not job.done()]
            self._running.append(self._worker.submit(self._encode, batch))

    def close(self) -> None:
        """Wait for the worker's batches (their errors are raised here) and stop it."""
        try:
            for job in self._running:
                job.result()
        finally:
            self._running = []
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None

    @torch.no_grad()
    def _encode(self, batch: dict[int, np.ndarray]) -> None:
        from ..modeling.encoder import preprocess_frames

        x = preprocess_frames(list(batch.values()), self.preprocess).to(self.device)
        use_autocast = self.device.startswith("cuda") and self.dtype != torch.float32
        with torch.autocast("cuda", dtype=self.dtype, enabled=use_autocast):
            out = self.model.encode_image(x).float().cpu()
        self.features.update(zip(batch, out, strict=True))
        if self.on_encoded is not None:
            self.on_encoded(len(batch))

    def assemble(self, index: np.ndarray, path=None) -> tuple[torch.Tensor, np.ndarray | None]:
        """(N, k) keyframe frame indices -> features (N, k, D) float32 and the middle
        keyframes' thumbnails (N, 1, h, w, 3) (None without thumbnails). A keyframe never
        encoded (its frame could not be decoded) gets the nearest encoded one's features,
        in shot-then-slot order; InputError naming ``path`` if none was encoded."""
        self.flush()
        self.close()
        n, k = index.shape
        done = np.array([[int(i) in self.features for i in row] for row in index], dtype=bool)
        if not done.any():
            raise InputError("none of the keyframes could be decoded", path)
        have = np.argwhere(done)
        order = have[:, 0] * k + have[:, 1]
        rows = []
        for i in range(n):
            for j in range(k):
                if not done[i, j]:  # unreadable frame: the nearest encoded keyframe in time
                    near = have[np.argmin(np.abs(order - (i * k + j)))]
                    rows.append(self.features[int(index[near[0], near[1]])])
                else:
                    rows.append(self.features[int(index[i, j])])
        feats = torch.stack(rows).reshape(n, k, -1)
        middle = [self.thumbnails.get(int(i)) for i in index[:, k // 2]]
        shape = next((t.shape for t in middle if t is not None), None)
        if shape is None:
            return feats, None
        thumbs = np.zeros((n, 1, *shape), dtype=np.uint8)
        for i, thumb in enumerate(middle):
            if thumb is not None and thumb.shape == shape:
                thumbs[i, 0] = thumb
        return feats, thumbs


@torch.no_grad()
def encode_video_keyframes(
    model,
    preprocess,
    video,
    shots: list,
    k: int = 3,
    device: str = "cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    thumbnail_height: int | None = 96,
    quiet: bool = True,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Decode and encode the keyframes of ``shots`` in their own streaming pass.

    Memory stays O(batch_size) images however long the video is. Returns features
    (N, k, D) float32 on CPU and, if ``thumbnail_height``, the middle keyframe of each
    shot as a small uint8 thumbnail (N, 1, h, w, 3) for reports. A keyframe whose frame
    cannot be decoded gets the features of the nearest decoded keyframe.
    (``sseg segment`` takes the keyframes during shot detection instead:
    :func:`encode_collected_keyframes`.)
    """
    from .keyframes import iter_keyframes, keyframe_indices

    if not shots:
        raise InputError("no shots to take keyframes from", getattr(video, "path", None))
    index = keyframe_indices(shots, k)
    encoding = KeyframeEncoding(model, preprocess, device, batch_size, precision, thumbnail_height)
    with _encoding_bar(encoding, len(set(index.reshape(-1).tolist())), quiet):
        for slots, rgb in iter_keyframes(video, shots, k):
            i, j = slots[0]
            encoding.add(int(index[i, j]), rgb, thumbnail=any(j == k // 2 for _, j in slots))
        encoding.flush()
    return encoding.assemble(index, getattr(video, "path", None))


def encode_collected_keyframes(
    encoding: KeyframeEncoding, collector, video, shots: list, quiet: bool = True
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Finish what a :class:`~sseg.segmentation.keyframe_collector.KeyframeCollector` started during
    shot detection: encode the final ``shots``' keyframes still kept, decode again only
    those it no longer has, and return :meth:`KeyframeEncoding.assemble`'s result
    (equal to :func:`encode_video_keyframes` on the same shots)."""
    from .keyframes import keyframe_indices, scaled_size

    path = getattr(video, "path", None)
    if not shots:
        raise InputError("no shots to take keyframes from", path)
    k = collector.k
    index = keyframe_indices(shots, k)
    middle = set(index[:, k // 2].tolist())
    pictures, missing = collector.finish(shots)
    if encoding.thumbnail_height:  # a middle keyframe settled under another slot: re-take it
        missing |= {i for i in middle if i not in encoding.thumbnails and i not in pictures}
    with _encoding_bar(encoding, len(pictures) + len(missing) + len(encoding._batch), quiet):
        for i, rgb in sorted(pictures.items()):
            encoding.add(i, rgb, thumbnail=i in middle)
        if missing:
            size = scaled_size(video.info.width, video.info.height)
            for frame in video.frames(
                size=size,
                start_frame=min(missing),
                end_frame=max(missing) + 1,
                wanted=missing,
                keyframe=True,
            ):
                encoding.add(frame.index, frame.rgb, thumbnail=frame.index in middle)
        encoding.flush()
    return encoding.assemble(index, path)


@contextlib.contextmanager
def _encoding_bar(encoding: KeyframeEncoding, total: int, quiet: bool):
    """A progress bar over the pictures ``encoding`` encodes inside the block."""
    from tqdm import tqdm

    with tqdm(
        total=total, desc="keyframes+encoding", unit="img", file=sys.stderr, disable=quiet,
        leave=False,
    ) as bar:  # fmt: skip
        encoding.on_encoded = bar.update
        try:
            yield bar
        finally:
            encoding.on_encoded = None
        bar.update(max(bar.total - bar.n, 0))  # unreadable keyframes: nothing to encode


def _thumbnail(rgb: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(rgb)
    width = max(1, round(image.width * height / image.height))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
