"""Synthetic corpus of keyframe-feature sequences with known scenes and genres.

Used by tests, the demo and fine-tuning tests in place of real films. Each video:

* shot durations are lognormal with median 2.75 s and 8% of shots longer than 10 s
  (``sigma = ln(10 / 2.75) / z_0.92``), like feature films;
* scenes are runs of ``1 + Poisson(mean_scene_shots - 1)`` shots;
* 1-3 genres are drawn; every scene centroid mixes a video style vector, the video's
  genre directions from ``genre_bank`` and a fresh random direction;
* shot feature = centroid + shot noise; keyframe j = shot feature + keyframe jitter;
* labels: 1 on the last shot of each scene (the video's last shot included), else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store.features import FeatureStore, FeatureStoreWriter

MEDIAN_SHOT_SECONDS = 2.75
LONG_SHOT_SECONDS = 10.0
LONG_SHOT_FRACTION = 0.08
_Z_092 = 1.4050715603  # standard normal 0.92 quantile
SIGMA = math.log(LONG_SHOT_SECONDS / MEDIAN_SHOT_SECONDS) / _Z_092

try:  # the 21 IMDb genres, from the genre module when it is installed
    from ..modeling.genres import GENRES as _GENRES
except ImportError:  # pragma: no cover - depends on what is installed
    _GENRES = (
        "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary",
        "Drama", "Family", "Fantasy", "History", "Horror", "Music", "Musical", "Mystery",
        "Romance", "Sci-Fi", "Sport", "Thriller", "War", "Western",
    )  # fmt: skip
GENRES: tuple[str, ...] = tuple(_GENRES)


def shot_durations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` film-like shot durations in seconds (lognormal, median 2.75 s, 8% > 10 s)."""
    return rng.lognormal(mean=math.log(MEDIAN_SHOT_SECONDS), sigma=SIGMA, size=n)


def random_genre_bank(dim: int, seed: int = 0, n: int | None = None) -> np.ndarray:
    """(n=21, dim) unit-norm float32 genre directions: a placeholder genre bank."""
    rng = np.random.default_rng([seed, 0x6E7E])
    g = rng.normal(size=(n or len(GENRES), dim))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class SyntheticVideo:
    """One generated video with its ground truth."""

    video_id: str
    keyframes: np.ndarray  # (N, K, D) float32
    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray  # (N,) int64, 1 = last shot of a scene
    scene_ids: np.ndarray  # (N,) int64
    genres: list[str] = field(default_factory=list)
    fps: float = 24.0


def generate_video(
    rng: np.random.Generator,
    video_id: str,
    num_shots: int,
    genre_bank: np.ndarray,
    keyframes: int = 3,
    mean_scene_shots: float = 8.0,
    shot_noise: float = 0.6,
    keyframe_jitter: float = 0.15,
    genre_strength: float = 0.8,
) -> SyntheticVideo:
    """Generate one video of ``num_shots`` shots (see the module docstring)."""
    if num_shots < 1:
        raise ValueError("num_shots must be >= 1")
    dim = genre_bank.shape[1]
    lengths: list[int] = []
    while sum(lengths) < num_shots:
        lengths.append(1 + int(rng.poisson(max(mean_scene_shots - 1, 0))))
    lengths[-1] -= sum(lengths) - num_shots
    scene_ids = np.repeat(np.arange(len(lengths)), lengths)
    genre_idx = rng.choice(len(genre_bank), size=int(rng.integers(1, 4)), replace=False)
    style = rng.normal(size=dim) * 0.5
    genre_dir = genre_bank[genre_idx].sum(0) * genre_strength * math.sqrt(dim) / len(genre_idx)
    centroids = style + genre_dir + rng.normal(size=(len(lengths), dim))
    shots = centroids[scene_ids] + shot_noise * rng.normal(size=(num_shots, dim))
    kf = shots[:, None, :] + keyframe_jitter * rng.normal(size=(num_shots, keyframes, dim))
    # scale like CLIP image features (norm ~ 10)
    kf *= 10.0 / math.sqrt(dim * (1.0 + 0.25 + genre_strength**2 + shot_noise**2))
    durations = shot_durations(rng, num_shots)
    ends = np.cumsum(durations)
    starts = np.concatenate([[0.0], ends[:-1]])
    labels = np.zeros(num_shots, dtype=np.int64)
    labels[np.cumsum(lengths) - 1] = 1
    return SyntheticVideo(
        video_id=video_id,
        keyframes=kf.astype(np.float32),
        starts=starts,
        ends=ends,
        labels=labels,
        scene_ids=scene_ids.astype(np.int64),
        genres=[GENRES[i] for i in sorted(genre_idx)] if len(genre_bank) == len(GENRES) else [],
    )


def generate_corpus(
    num_videos: int,
    shots: tuple[int, int] = (60, 200),
    dim: int = 512,
    seed: int = 0,
    genre_bank: np.ndarray | None = None,
    **video_kwargs: float,
) -> tuple[list[SyntheticVideo], np.ndarray]:
    """``num_videos`` videos with ``shots[0]..shots[1]`` shots each, and the genre bank used."""
    bank = random_genre_bank(dim, seed) if genre_bank is None else np.asarray(genre_bank)
    rng = np.random.default_rng(seed)
    videos = [
        generate_video(
            rng, f"syn{i:04d}", int(rng.integers(shots[0], shots[1] + 1)), bank, **video_kwargs
        )
        for i in range(num_videos)
    ]
    return videos, bank


def write_synthetic_store(
    path: str | Path,
    num_videos: int,
    shots: tuple[int, int] = (60, 200),
    dim: int = 512,
    seed: int = 0,
    shard_size: int = 50_000,
    **video_kwargs: float,
) -> FeatureStore:
    """Generate a corpus straight into a feature store (labels included); also writes
    the genre bank as ``genre_bank.npy`` beside the index."""
    videos, bank = generate_corpus(num_videos, shots, dim, seed, **video_kwargs)
    meta = {"source": "synthetic", "seed": seed, "genre_bank": "genre_bank.npy"}
    with FeatureStoreWriter(path, shard_size=shard_size, meta=meta) as writer:
        for v in videos:
            if not writer.has(v.video_id):
                writer.add(v.video_id, v.keyframes, v.starts, v.ends, v.genres, v.labels, v.fps)
    save_genre_bank(Path(path) / "genre_bank.npy", bank)
    return FeatureStore(path)


def save_genre_bank(path: str | Path, bank: np.ndarray) -> None:
    """Atomically save a (G, D) genre bank as float32 ``.npy``."""
    from ..atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(bank, dtype=np.float32), allow_pickle=False)
