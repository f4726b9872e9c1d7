"""Genres of the proxy benchmark: how often each occurs, its editing conventions, its
latent visual direction, and the two noisy text-side views of it (the genre banks).

Every number here was fixed before any model was trained on the benchmark and is never
tuned to make a model variant win (docs/proxy_benchmark.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..modeling.genres import GENRES


@dataclass(frozen=True)
class GenreConventions:
    """Editing conventions of one genre (a video averages those of its genres).

    Attributes:
        pace: offset of log shot duration (negative = faster cutting).
        scene_shots: offset of log scene length in shots.
        cut_in: probability that a shot inside a scene is an insert / cut-in.
        lighting_jump: probability that the lighting changes at a shot inside a scene.
        dialogue: probability that a scene is shot / reverse-shot coverage (A B A B).
        same_place: probability that a scene change keeps the place (later time).
    """

    pace: float
    scene_shots: float
    cut_in: float
    lighting_jump: float
    dialogue: float
    same_place: float


_C = GenreConventions
CONVENTIONS: dict[str, GenreConventions] = {
    "Action": _C(-0.30, 0.30, 0.12, 0.05, 0.15, 0.10),
    "Adventure": _C(-0.10, 0.15, 0.08, 0.04, 0.20, 0.08),
    "Animation": _C(-0.15, 0.00, 0.07, 0.06, 0.30, 0.20),
    "Biography": _C(0.10, -0.10, 0.03, 0.03, 0.55, 0.35),
    "Comedy": _C(-0.05, -0.05, 0.03, 0.02, 0.60, 0.40),
    "Crime": _C(-0.05, 0.05, 0.06, 0.05, 0.50, 0.25),
    "Drama": _C(0.15, -0.15, 0.02, 0.03, 0.65, 0.40),
    "Family": _C(0.00, 0.00, 0.04, 0.02, 0.45, 0.35),
    "Fantasy": _C(-0.05, 0.10, 0.07, 0.08, 0.30, 0.15),
    "Film-Noir": _C(0.10, -0.05, 0.04, 0.10, 0.55, 0.30),
    "History": _C(0.10, 0.05, 0.04, 0.04, 0.40, 0.20),
    "Horror": _C(0.00, 0.10, 0.09, 0.12, 0.30, 0.30),
    "Music": _C(-0.10, 0.05, 0.07, 0.12, 0.25, 0.30),
    "Musical": _C(0.00, 0.10, 0.05, 0.10, 0.25, 0.30),
    "Mystery": _C(0.05, 0.00, 0.06, 0.05, 0.55, 0.35),
    "Romance": _C(0.10, -0.10, 0.02, 0.03, 0.65, 0.40),
    "Sci-Fi": _C(-0.10, 0.15, 0.08, 0.08, 0.30, 0.15),
    "Sport": _C(-0.15, 0.15, 0.08, 0.03, 0.25, 0.20),
    "Thriller": _C(-0.15, 0.10, 0.09, 0.07, 0.40, 0.20),
    "War": _C(-0.10, 0.20, 0.09, 0.06, 0.20, 0.10),
    "Western": _C(0.15, 0.00, 0.04, 0.02, 0.40, 0.20),
}

# Relative frequency of each genre among feature films (IMDb-like: Drama is everywhere).
FREQUENCY: dict[str, float] = {
    "Action": 0.25, "Adventure": 0.20, "Animation": 0.04, "Biography": 0.06,
    "Comedy": 0.25, "Crime": 0.20, "Drama": 0.55, "Family": 0.06, "Fantasy": 0.10,
    "Film-Noir": 0.01, "History": 0.05, "Horror": 0.08, "Music": 0.03, "Musical": 0.02,
    "Mystery": 0.10, "Romance": 0.20, "Sci-Fi": 0.12, "Sport": 0.03, "Thriller": 0.25,
    "War": 0.04, "Western": 0.02,
}  # fmt: skip
GENRE_COUNT_PROBS = (0.15, 0.30, 0.55)  # a film lists 1, 2 or 3 genres

# Genres whose looks are related share a latent family direction.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("Action", "Adventure", "War", "Western", "Sci-Fi", "Sport"),
    ("Crime", "Thriller", "Mystery", "Film-Noir", "Horror"),
    ("Comedy", "Family", "Animation", "Musical", "Music", "Romance"),
    ("Drama", "Biography", "History", "Fantasy"),
)
FAMILY_WEIGHT = 0.45  # cos between two latent genre directions of one family ~ 0.2

# Genre banks = noisy text-side views of the latent visual directions T. Each bank row is
# normalise(a * T_g + b * template + c * noise_g): "template" is one direction shared by
# all rows of a bank (the text modality and the sentence pattern), noise is private.
# Definitions describe what a genre looks like, so they align better with T than bare
# names do (the paper's finding, assumed here): cos(def_g, T_g) = 0.75, cos(name_g,
# T_g) = 0.45.
DEFINITION_BANK = (0.75, 0.45, 0.485)  # (a, b, c), a^2 + b^2 + c^2 ~ 1
NAME_BANK = (0.45, 0.60, 0.661)

assert set(CONVENTIONS) == set(GENRES) == set(FREQUENCY)


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit L2 norm along its last axis."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def latent_genre_directions(rng: np.random.Generator, dim: int) -> np.ndarray:
    """(21, dim) unit latent visual directions, related within a genre family."""
    family_dirs = unit(rng.normal(size=(len(FAMILIES), dim)))
    family_of = {g: i for i, members in enumerate(FAMILIES) for g in members}
    own = unit(rng.normal(size=(len(GENRES), dim)))
    mix = np.stack([family_dirs[family_of[g]] for g in GENRES])
    w = FAMILY_WEIGHT
    return unit(w * mix + np.sqrt(1 - w * w) * own)


def noisy_bank(rng: np.random.Generator, latent: np.ndarray, mix: tuple[float, ...]) -> np.ndarray:
    """(21, dim) unit float32 bank: a text-side view of ``latent`` (see the weights above)."""
    a, b, c = mix
    template = unit(rng.normal(size=latent.shape[1]))
    noise = unit(rng.normal(size=latent.shape))
    return unit(a * latent + b * template + c * noise).astype(np.float32)


def typical_places(rng: np.random.Generator, latent: np.ndarray, per_genre: int) -> np.ndarray:
    """(21, per_genre, dim) unit vectors: each genre's typical places (saloon, desert...),
    leaning towards its latent direction (cos ~ 0.45)."""
    noise = unit(rng.normal(size=(latent.shape[0], per_genre, latent.shape[1])))
    return unit(0.5 * latent[:, None, :] + noise)


def draw_genres(rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of 1-3 genres for one video, by :data:`FREQUENCY`."""
    count = int(rng.choice(3, p=GENRE_COUNT_PROBS)) + 1
    p = np.array([FREQUENCY[g] for g in GENRES])
    return np.sort(rng.choice(len(GENRES), size=count, replace=False, p=p / p.sum()))


def video_conventions(genre_idx: np.ndarray) -> GenreConventions:
    """Conventions of a video: the mean over its genres."""
    rows = np.array([list(vars(CONVENTIONS[GENRES[i]]).values()) for i in genre_idx])
    return GenreConventions(*(float(v) for v in rows.mean(0)))
