"""Procedural multi-scene videos with known cuts, written with PyAV.

Every scene has a *look* (hue, pattern, pattern frequency); its shots are
variants of that look (shifted hue, different brightness, another blob
position), so consecutive shots differ clearly (hard cuts) while shots of one
scene stay more alike than shots of different scenes. Content moves slowly
within a shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

PATTERNS = ("stripes", "rings", "checker", "gradient")


@dataclass(frozen=True)
class Look:
    """Appearance shared by the shots of one scene."""

    hue: float  # degrees
    pattern: str
    frequency: float


@dataclass(frozen=True)
class ShotStyle:
    """Per-shot variation of a look."""

    hue_shift: float
    value: float  # brightness 0..1
    blob: tuple[float, float]  # blob centre, fractions of width/height
    speed: float  # pattern drift, cycles per frame


def random_look(rng: np.random.Generator) -> Look:
    """A random scene look."""
    return Look(float(rng.uniform(0, 360)), str(rng.choice(PATTERNS)), float(rng.uniform(2, 8)))


def random_style(rng: np.random.Generator, index: int, contrast: bool = True) -> ShotStyle:
    """A shot variant of a look.

    With ``contrast`` consecutive indices alternate dark/bright so every cut is a
    hard cut for a detector; without it variants stay close to the look.
    """
    if contrast:
        value = (0.35, 0.95)[index % 2] + float(rng.uniform(-0.05, 0.05))
    else:
        value = float(rng.uniform(0.55, 0.85))
    return ShotStyle(
        float(rng.uniform(-20, 20) if contrast else rng.uniform(-8, 8)),
        value,
        (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))),
        float(rng.uniform(0.005, 0.02)),
    )


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    h = np.mod(h, 360.0) / 60.0
    c = v * s
    x = c * (1 - np.abs(np.mod(h, 2) - 1))
    m = v - c
    z = np.zeros_like(h)
    sector = np.floor(h).astype(int) % 6
    choices = [
        np.stack([c, x, z], -1),
        np.stack([x, c, z], -1),
        np.stack([z, c, x], -1),
        np.stack([z, x, c], -1),
        np.stack([x, z, c], -1),
        np.stack([c, z, x], -1),
    ]
    rgb = np.select([sector[..., None] == i for i in range(6)], choices)
    return np.clip((rgb + m[..., None]) * 255.0, 0, 255).astype(np.uint8)


def render(look: Look, style: ShotStyle, t: int, width: int, height: int) -> np.ndarray:
    """RGB frame (height, width, 3) uint8 of a shot at frame offset ``t``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    phase = style.speed * t
    if look.pattern == "stripes":
        p = 0.5 + 0.5 * np.sin(2 * np.pi * (look.frequency * u + phase))
    elif look.pattern == "rings":
        p = 0.5 + 0.5 * np.sin(2 * np.pi * (look.frequency * np.hypot(u - 0.5, v - 0.5) - phase))
    elif look.pattern == "checker":
        p = ((np.floor(look.frequency * (u + phase)) + np.floor(look.frequency * v)) % 2) * 0.8
    else:
        p = np.mod(u + v + phase, 1.0)
    bx, by = style.blob
    blob = np.exp(-((u - bx - 0.1 * np.sin(phase * 6)) ** 2 + (v - by) ** 2) / 0.01)
    hue = look.hue + style.hue_shift + 40.0 * p
    sat = 0.5 + 0.4 * p
    val = np.clip(
        style.value * (0.7 + 0.3 * p) * (1 - 0.5 * blob) + 0.4 * blob * (1 - style.value), 0, 1
    )
    return _hsv_to_rgb(hue, sat, val)


@dataclass
class GeneratedVideo:
    """What was written: the file, its fps and the ground truth."""

    path: Path
    fps: float
    num_frames: int
    shot_starts: list[int]  # first frame of each shot
    scene_starts: list[int]  # first frame of each scene (subset of shot_starts)


def write_video(
    path: str | Path,
    scenes: list[list[int]],
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    codec: str = "libx264",
) -> GeneratedVideo:
    """Write a video whose scene i has shots of ``scenes[i][j]`` frames each.

    Written atomically; H.264 in MP4 by default (``codec="mpeg4"`` also works).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    shot_starts: list[int] = []
    scene_starts: list[int] = []
    frames: list[np.ndarray] = []
    for scene in scenes:
        look = random_look(rng)
        scene_starts.append(len(frames))
        for length in scene:
            style = random_style(rng, len(shot_starts))
            shot_starts.append(len(frames))
            frames.extend(render(look, style, t, width, height) for t in range(length))
    write_frames(path, frames, fps, codec)
    return GeneratedVideo(Path(path), float(fps), len(frames), shot_starts, scene_starts)


def write_frames(
    path: str | Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264"
) -> None:
    """Encode RGB frames to ``path`` atomically (container from the file extension)."""
    import av

    path = Path(path)
    height, width = frames[0].shape[:2]
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format=_format_for(path))
        try:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": "ultrafast", "g": str(fps * 2)}
            for rgb in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()


def _format_for(path: Path) -> str:
    return {".mp4": "mp4", ".mkv": "matroska", ".ts": "mpegts", ".avi": "avi"}.get(
        path.suffix.lower(), "mp4"
    )


def write_damaged_video(path: str | Path, seed: int = 0) -> Path:
    """A 60-frame H.264 MP4 (6 flat-grey shots with texture) with garbage bytes in three places.

    The container still opens, but some packets fail to decode: used to test that
    unreadable frames in the middle of a file are skipped, not fatal.
    """
    rng = np.random.default_rng(seed)
    frames = [np.full((48, 64, 3), 40 * (i // 10) % 255, np.uint8) for i in range(60)]
    for frame in frames:
        frame[::4] = rng.integers(0, 255, frame[::4].shape, dtype=np.uint8)
    path = Path(path)
    write_frames(path, frames, fps=10)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for start, size in [(middle, 3000), (middle // 2, 200), (middle + middle // 2, 200)]:
        data[start : start + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path
