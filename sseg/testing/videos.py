"""Procedural multi-scene videos with known cuts, written with PyAV.

Every scene has a *look* (hue, pattern, pattern frequency); its shots are
variants of that look (shifted hue, different brightness, another blob
position), so consecutive shots differ clearly (hard cuts) while shots of one
scene stay more alike than shots of different scenes. Content moves slowly
within a shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
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
    path: str | Path,
    frames: list[np.ndarray],
    fps: int = 10,
    codec: str = "libx264",
    *,
    times: list[float] | None = None,
    rotation: int = 0,
) -> None:
    """Encode RGB frames to ``path`` atomically (container from the file extension).

    ``times``: each frame's presentation time in seconds (millisecond precision), for
    variable-frame-rate video; default ``i / fps``. ``rotation``: clockwise degrees
    a player must turn the frames (written as a display matrix, as phones do).
    """
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
            if times is not None:
                stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
            if rotation:
                if not hasattr(stream, "set_display_rotation"):
                    raise RuntimeError("writing a display matrix needs a newer PyAV")
                stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if times is not None:
                    frame.pts = round(times[i] * 1000)
                    frame.time_base = Fraction(1, 1000)
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


def write_transition_video(
    path: str | Path,
    kind: str = "fade",
    shot_frames: int = 40,
    transition_frames: int = 16,
    fps: int = 25,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
) -> GeneratedVideo:
    """Two moving shots joined by a gradual transition instead of a cut.

    ``kind="fade"``: the first shot fades out to black over half of
    ``transition_frames`` (even), 4 black frames follow, the second fades in over the
    other half; ``kind="dissolve"``: a cross-dissolve of ``transition_frames``. The
    second shot "starts" (``shot_starts[1]``) at the middle of the transition.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    looks = [random_look(rng), random_look(rng)]
    styles = [random_style(rng, 0), random_style(rng, 1)]
    total = 2 * shot_frames + transition_frames + (4 if kind == "fade" else 0)

    def shot(s: int, t: int) -> np.ndarray:
        return render(looks[s], styles[s], t, width, height).astype(np.float64)

    frames: list[np.ndarray] = [shot(0, t) for t in range(shot_frames)]
    half = transition_frames // 2
    if kind == "fade":
        frames += [shot(0, shot_frames + i) * (1 - (i + 1) / (half + 1)) for i in range(half)]
        frames += [np.zeros((height, width, 3))] * 4
        frames += [shot(1, i) * ((i + 1) / (half + 1)) for i in range(half)]
        frames += [shot(1, half + t) for t in range(total - len(frames))]
    elif kind == "dissolve":
        for i in range(transition_frames):
            w = (i + 1) / (transition_frames + 1)
            frames.append(shot(0, shot_frames + i) * (1 - w) + shot(1, i) * w)
        frames += [shot(1, transition_frames + t) for t in range(total - len(frames))]
    else:
        raise ValueError(f"unknown transition {kind!r}")
    write_frames(path, [np.clip(f, 0, 255).astype(np.uint8) for f in frames], fps)
    middle = shot_frames + (transition_frames + (4 if kind == "fade" else 0)) // 2
    return GeneratedVideo(Path(path), float(fps), total, [0, middle], [0, middle])
