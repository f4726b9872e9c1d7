"""``--save-images``: N still frames per scene, as PySceneDetect's ``save-images -n N``.

With N = 1 the scene's middle frame; otherwise the scene is cut into N equal parts:
the first image is ``margin`` frames into the first part, the last one ``margin``
frames before the end of the last part, the others at the centres of their parts.
All images of a video come from one decoding pass, written as they are decoded (no
frame is held longer than needed), each atomically; on failure none is left behind.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import all_or_nothing, atomic_path
from ..errors import InputError
from .naming import (
    DEFAULT_IMAGE_TEMPLATE,
    IMAGE_VARIABLES,
    FileNameTemplate,
    file_timecode,
    image_number,
    parse_template,
    scene_number,
)

IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class ImageOptions:
    """How many images per scene and how they are written."""

    per_scene: int = 3
    margin: int = 1  # frames
    image_format: str = "jpg"
    quality: int = 95  # jpg / webp
    height: int | None = None
    width: int | None = None
    template: FileNameTemplate | None = None

    def __post_init__(self) -> None:
        if self.per_scene < 1:
            raise InputError(f"--num-images must be 1 or more per scene, not {self.per_scene}")
        if self.margin < 0:
            raise InputError(f"--image-margin must be 0 or more frames, got {self.margin}")
        if self.image_format not in IMAGE_FORMATS:
            raise InputError(f"--image-format must be one of {', '.join(IMAGE_FORMATS)}")
        if not 0 <= self.quality <= 100:
            raise InputError(f"--image-quality must be within [0, 100], got {self.quality}")
        for name, value in (("--image-height", self.height), ("--image-width", self.width)):
            if value is not None and value < 1:
                raise InputError(f"{name} must be a positive number of pixels, got {value}")


def image_template(text: str | None, per_scene: int, many_videos: bool = False):
    """The checked ``--image-filename`` template (without extension)."""
    in_scene = (("IMAGE_NUMBER",), ("FRAME_NUMBER",), ("TIMESTAMP_MS",), ("TIMECODE",))
    unique_by = tuple(("SCENE_NUMBER", *g) for g in in_scene) + in_scene[1:]
    if per_scene == 1:
        unique_by = (("SCENE_NUMBER",), *unique_by)
    return parse_template(
        text or DEFAULT_IMAGE_TEMPLATE,
        "--image-filename",
        IMAGE_VARIABLES,
        unique_by=unique_by,
        many_videos=many_videos,
    )


def image_frames(start: int, end: int, per_scene: int, margin: int = 1) -> list[int]:
    """Frame indices of the images of a scene with frames ``[start, end)``."""
    last = max(end - 1, start)
    length = last - start + 1
    if per_scene == 1:
        return [start + (length - 1) // 2]
    part = length / per_scene
    frames = []
    for j in range(per_scene):
        lo, hi = start + j * part, start + (j + 1) * part
        if j == 0:
            frame = min(lo + margin, hi - 1)
        elif j == per_scene - 1:
            frame = max(hi - 1 - margin, lo)
        else:
            frame = (lo + hi - 1) / 2
        frames.append(min(max(int(frame), start), last))
    return frames


def image_size(width: int, height: int, options: ImageOptions) -> tuple[int, int] | None:
    """(width, height) to scale frames to, or None for the native size."""
    if options.height and options.width:
        return options.width, options.height
    if options.height:
        return max(1, round(width * options.height / height)), options.height
    if options.width:
        return options.width, max(1, round(height * options.width / width))
    return None


def _encode(rgb, options: ImageOptions) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    kind = IMAGE_FORMATS[options.image_format]
    extra = {"quality": options.quality} if kind in ("JPEG", "WEBP") else {"compress_level": 6}
    Image.fromarray(rgb).save(buffer, format=kind, **extra)
    return buffer.getvalue()


def save_images(
    result: Any, out_dir: str | Path, stem: str, options: ImageOptions | None = None
) -> list[Path]:
    """Write ``options.per_scene`` images per scene of ``result``; returns their paths.

    ``stem`` is ``$VIDEO_NAME``. A frame that cannot be decoded gives a RuntimeWarning
    naming it and no image; any write error removes the images already written.
    """
    from ..segmentation.video import open_video

    options = options or ImageOptions()
    template = options.template or image_template(None, options.per_scene)
    total = len(result.scenes)
    slots: dict[int, list[tuple[int, int]]] = {}  # frame -> [(scene, image)]
    for scene in result.scenes:
        frames = image_frames(scene.start_frame, scene.end_frame, options.per_scene, options.margin)
        for j, frame in enumerate(frames):
            slots.setdefault(frame, []).append((scene.index, j))
    if not slots:
        return []
    video = open_video(result.video.path)
    size = image_size(video.info.width, video.info.height, options)
    names: set[str] = set()
    with all_or_nothing() as written:
        for frame in video.frames(
            size=size, start_frame=min(slots), end_frame=max(slots) + 1, wanted=set(slots)
        ):
            data = _encode(frame.rgb, options)
            for scene_index, j in slots.pop(frame.index):
                name = template.fill(
                    VIDEO_NAME=stem,
                    SCENE_NUMBER=scene_number(scene_index, total),
                    IMAGE_NUMBER=image_number(j, options.per_scene),
                    FRAME_NUMBER=frame.index,
                    TIMESTAMP_MS=int(round(frame.time * 1000)),
                    TIMECODE=file_timecode(frame.time),
                )
                name = f"{name}.{options.image_format}"
                if name in names:  # same frame picked twice in a very short scene
                    continue
                names.add(name)
                target = Path(out_dir) / name
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
                written.append(target)
    if slots:
        warnings.warn(
            f"{result.video.path}: {sum(map(len, slots.values()))} image(s) not saved: "
            f"frame(s) {', '.join(map(str, sorted(slots)[:5]))} could not be decoded",
            RuntimeWarning,
            stacklevel=2,
        )
    return written
