"""Generative model of the proxy benchmark: scene structure, shot timing and keyframe
features of one video (docs/proxy_benchmark.md describes it and its calibration).

Two stages, one random stream per video:

1. :func:`draw_structure` - genres, scene lengths, inserts (cut-ins) and shot durations,
   calibrated to MovieNet-SSeg's test-split statistics (:data:`STRUCTURE`);
2. :func:`render_features` - what each keyframe shows: a sum of unit vectors (common
   image component, video style, genre look, place, cast, lighting, camera setup, shot and
   keyframe noise) weighted by :data:`LOOKS`, scaled to a CLIP-like L2 norm of ~10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..modeling.genres import GENRES
from .proxy_genres import (
    DEFINITION_BANK,
    NAME_BANK,
    GenreConventions,
    draw_genres,
    latent_genre_directions,
    noisy_bank,
    typical_places,
    unit,
    video_conventions,
)

FPS = 24.0
DIM = 512
SHOTS_PER_VIDEO = (400, 600)  # about this many shots per video (whole scenes)
MIN_FRAMES = 3
LONG_SHOT_SECONDS = 10.0
MEAN_SCENE_SHOTS = 13.0  # MovieNet-SSeg test split
FEATURE_NORM = 10.0
INSERT, MOVE = 1, 2  # shot kinds besides 0 (plain)
# boundary kinds (of a scene's last shot)
NEW_PLACE, REVISIT, SAME_PLACE = 1, 2, 3


@dataclass(frozen=True)
class StructureParams:
    """Scene and timing constants (fitted once to MovieNet-SSeg's test split).

    Scene length in shots: ``round(exp(scene_log_median + genre + sigma * z))`` clipped to
    ``[1, max_scene_shots]``.
    Log shot duration: ``shot_log_median + video pace + scene tempo + sigma * z``, plus for a
    scene's last shot ``end_offset + end_sigma * z'``, plus for an insert ``insert_offset``,
    plus with probability ``long_take_prob`` an exponential long-take term (a Pareto tail
    in seconds). Scene tempo is ``-tempo_per_log_shots * (log n - mean) + sigma * z``:
    scenes of many shots are cut faster.
    """

    scene_log_median: float = 1.52
    scene_log_sigma: float = 1.44
    shot_log_median: float = 1.07
    shot_sigma: float = 0.8
    video_pace_sigma: float = 0.20
    scene_tempo_sigma: float = 0.30
    tempo_per_log_shots: float = 0.05
    end_offset: float = 0.29
    end_sigma: float = 0.55
    insert_offset: float = -0.40
    long_take_prob: float = 0.12
    long_take_scale: float = 0.6
    max_scene_shots: int = 400
    max_shot_seconds: float = 300.0


@dataclass(frozen=True)
class LookParams:
    """Weights of the keyframe components (before scaling to norm ~10) and event rates."""

    common: float = 0.55  # shared by every image (CLIP features share a mean direction)
    style: float = 0.30  # per video: film stock, colour grading
    genre: float = 0.35  # per video: sum of its latent genre directions
    genre_scene_sd: float = 0.30  # relative scene-to-scene spread of the genre weight
    place: float = 0.40  # per scene location (shared by every shot of the scene)
    prototype: float = 0.50  # share of a new place drawn from its genre's typical places
    cast: float = 0.30  # characters present in the scene
    lighting: float = 0.30  # time of day / lighting, changes at lighting jumps
    lighting_keep: float = 0.50  # cos between lighting before and after a jump
    setup: float = 0.58  # camera setup (angle, framing); A B A B returns to earlier ones
    insert: float = 0.80  # setup weight of an insert / cut-in (close-up of a detail)
    insert_place: float = 0.40  # how much of the place and cast an insert shows
    same_place_setup_keep: float = 0.60  # cos of camera setups across a same-place change
    shot: float = 0.32  # per-shot noise (actors move, framing drifts)
    keyframe: float = 0.12  # per-keyframe noise
    revisit: float = 0.25  # a new scene returns to an earlier place (not the last one)
    new_setup: float = 0.35  # coverage scenes: chance a cut goes to a new setup
    dialogue_alternate: float = 0.80  # dialogue scenes: chance a cut alternates A <-> B
    move: float = 0.40  # a shot > 10 s pans to another setup between its keyframes
    prototypes_per_genre: int = 4
    framing_sd: float = 0.35  # log-spread of setup framing (close-up vs wide), per setup
    motion_sd: float = 0.40  # log-spread of the per-shot noise weight


STRUCTURE = StructureParams()
LOOKS = LookParams()


@dataclass
class VideoStructure:
    """Ground-truth structure of one video (before features)."""

    genre_idx: np.ndarray  # sorted genre indices
    conventions: GenreConventions
    scene_lengths: np.ndarray  # shots per scene
    scene_ids: np.ndarray  # (N,)
    kinds: np.ndarray  # (N,) 0 plain, INSERT (MOVE set later by render_features)
    frames: np.ndarray  # (N,) shot lengths in frames at FPS

    @property
    def labels(self) -> np.ndarray:
        """1 = last shot of a scene, 0 = not; -100 for the video's last shot, which
        MovieNet's label files leave out too."""
        labels = np.zeros(self.scene_ids.size, dtype=np.int64)
        labels[:-1] = np.diff(self.scene_ids) != 0
        labels[-1] = -100
        return labels

    @property
    def genres(self) -> list[str]:
        """Genre names."""
        return [GENRES[i] for i in self.genre_idx]

    @property
    def times(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) in seconds."""
        ends = np.cumsum(self.frames)
        return (ends - self.frames) / FPS, ends / FPS


def draw_structure(
    rng: np.random.Generator, num_shots: int, params: StructureParams = STRUCTURE
) -> VideoStructure:
    """Genres, scenes, inserts and durations of one video of about ``num_shots`` shots.

    The video holds ``num_shots / MEAN_SCENE_SHOTS`` whole scenes (at least 2), so no scene
    length is biased by where the video stops.
    """
    genre_idx = draw_genres(rng)
    conv = video_conventions(genre_idx)
    scenes = max(2, round(num_shots / MEAN_SCENE_SHOTS))
    z = rng.normal(size=scenes)
    lengths = np.round(
        np.exp(params.scene_log_median + conv.scene_shots + params.scene_log_sigma * z)
    )
    scene_lengths = np.clip(lengths, 1, params.max_scene_shots).astype(np.int64)
    n = int(scene_lengths.sum())
    scene_ids = np.repeat(np.arange(scene_lengths.size), scene_lengths)
    is_first = np.zeros(n, dtype=bool)
    is_first[np.cumsum(scene_lengths) - scene_lengths] = True
    is_end = np.zeros(n, dtype=bool)
    is_end[np.cumsum(scene_lengths) - 1] = True
    kinds = np.where(~is_first & (rng.random(n) < conv.cut_in), INSERT, 0)
    log_n = np.log(scene_lengths)
    tempo = -params.tempo_per_log_shots * (log_n - params.scene_log_median)
    tempo = tempo + params.scene_tempo_sigma * rng.normal(size=scene_lengths.size)
    log_d = (
        params.shot_log_median
        + conv.pace
        + params.video_pace_sigma * rng.normal()
        + tempo[scene_ids]
        + params.shot_sigma * rng.normal(size=n)
        + is_end * (params.end_offset + params.end_sigma * rng.normal(size=n))
        + (kinds == INSERT) * params.insert_offset
    )
    long_take = rng.random(n) < params.long_take_prob
    log_d = log_d + long_take * rng.exponential(params.long_take_scale, size=n)
    seconds = np.minimum(np.exp(log_d), params.max_shot_seconds)
    frames = np.maximum(np.round(seconds * FPS), MIN_FRAMES).astype(np.int64)
    return VideoStructure(genre_idx, conv, scene_lengths, scene_ids, kinds, frames)


@dataclass
class RenderedVideo:
    """Keyframe features of one video and per-shot ground truth used in diagnostics."""

    keyframes: np.ndarray  # (N, 3, D) float32
    kinds: np.ndarray  # (N,) 0 plain, INSERT, MOVE
    boundary_kinds: np.ndarray  # (N,) 0, or NEW_PLACE / REVISIT / SAME_PLACE at scene ends
    lighting_jumps: np.ndarray  # (N,) bool


class _Vectors:
    """Grows a (M, D) table of random unit vectors; components refer to rows by id."""

    def __init__(self, rng: np.random.Generator, dim: int):
        self.rng, self.dim, self.rows = rng, dim, []
        self.framing: list[float] = []  # per row; used for camera setups (close-up > 0)

    def new(self, base: np.ndarray | None = None, keep: float = 0.0) -> int:
        v = unit(self.rng.normal(size=self.dim))
        if base is not None:
            v = unit(keep * base + np.sqrt(1.0 - keep * keep) * v)
        self.rows.append(v)
        self.framing.append(float(self.rng.normal()))
        return len(self.rows) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.rows[i]

    def table(self) -> np.ndarray:
        return np.stack(self.rows)


def render_features(
    rng: np.random.Generator,
    structure: VideoStructure,
    latent: np.ndarray,
    prototypes: np.ndarray,
    common: np.ndarray,
    looks: LookParams = LOOKS,
) -> RenderedVideo:
    """Keyframe features (N, 3, D) for ``structure``.

    ``latent`` (21, D) are the latent genre directions, ``prototypes`` (21, P, D) the typical
    places of each genre, ``common`` (D,) the direction every image shares.
    """
    dim = latent.shape[1]
    n = structure.scene_ids.size
    conv = structure.conventions
    vec = _Vectors(rng, dim)
    kinds = structure.kinds.copy()
    durations = structure.frames / FPS
    # per-shot ids into the vector table, per-keyframe setup blend
    place_id = np.zeros(n, dtype=np.int64)
    cast_id = np.zeros(n, dtype=np.int64)
    light_id = np.zeros(n, dtype=np.int64)
    setup_a = np.zeros(n, dtype=np.int64)
    setup_b = np.zeros(n, dtype=np.int64)
    genre_w = np.zeros(n)
    lighting_jumps = np.zeros(n, dtype=bool)
    boundary_kinds = np.zeros(n, dtype=np.int64)
    characters = [vec.new() for _ in range(8)]
    places: list[int] = []
    setups: list[int] = []
    light = vec.new()
    pos = 0
    for s, length in enumerate(structure.scene_lengths):
        same_place = s > 0 and rng.random() < conv.same_place
        if same_place:
            kind = SAME_PLACE
            place = places[-1]
            light = vec.new()
            previous = setups
            setups = [vec.new(vec[u], looks.same_place_setup_keep) for u in previous]
        else:
            older = places[:-1]
            if older and rng.random() < looks.revisit:
                kind, place = REVISIT, int(rng.choice(older))
            else:
                g = int(rng.choice(structure.genre_idx))
                proto = prototypes[g, int(rng.integers(prototypes.shape[1]))]
                kind, place = NEW_PLACE, vec.new(proto, looks.prototype)
            light = vec.new()
            setups = []
        places.append(place)
        if s > 0:
            boundary_kinds[pos - 1] = kind
        present = rng.choice(len(characters), size=int(rng.integers(1, 4)), replace=False)
        cast = vec.new()
        vec.rows[cast] = unit(sum(vec[characters[c]] for c in present))
        weight = max(0.0, looks.genre * (1.0 + looks.genre_scene_sd * rng.normal()))
        dialogue = rng.random() < conv.dialogue
        pool = setups[:] if setups else [vec.new()]
        pair = pool[:2] if len(pool) >= 2 else [pool[0], vec.new()]
        if dialogue:
            pool = list(dict.fromkeys(pool + pair))
        current = pair[0] if dialogue else pool[0]
        for t in range(length):
            i = pos + t
            if t > 0 and kinds[i] != INSERT:
                current = _next_setup(rng, vec, current, pool, pair if dialogue else None, looks)
                if rng.random() < conv.lighting_jump:
                    light = vec.new(vec[light], looks.lighting_keep)
                    lighting_jumps[i] = True
            place_id[i], cast_id[i], light_id[i], genre_w[i] = place, cast, light, weight
            if kinds[i] == INSERT:
                setup_a[i] = setup_b[i] = vec.new()
                continue
            setup_a[i] = setup_b[i] = current
            if durations[i] > LONG_SHOT_SECONDS and rng.random() < looks.move:
                others = [u for u in pool if u != current]
                target = int(rng.choice(others)) if others and rng.random() < 0.5 else vec.new()
                if target not in pool:
                    pool.append(target)
                setup_b[i], current, kinds[i] = target, target, MOVE
        setups = pool
        pos += length
    keyframes = _assemble(rng, vec, structure, latent, common, looks, kinds,
                          place_id, cast_id, light_id, setup_a, setup_b, genre_w)  # fmt: skip
    return RenderedVideo(keyframes, kinds, boundary_kinds, lighting_jumps)


def _next_setup(
    rng: np.random.Generator,
    vec: _Vectors,
    current: int,
    pool: list[int],
    pair: list[int] | None,
    looks: LookParams,
) -> int:
    """Camera setup of the next shot of a scene (A B A B in dialogue scenes)."""
    if pair is not None:
        r = rng.random()
        if r < looks.dialogue_alternate:
            return pair[1] if current == pair[0] else pair[0]
        if r < looks.dialogue_alternate + 0.5 * (1 - looks.dialogue_alternate):
            return current
    others = [u for u in pool if u != current]
    if not others or rng.random() < looks.new_setup:
        new = vec.new()
        pool.append(new)
        return new
    return int(rng.choice(others))


def _assemble(
    rng: np.random.Generator, vec: _Vectors, structure: VideoStructure, latent: np.ndarray,
    common: np.ndarray, looks: LookParams, kinds: np.ndarray, place_id: np.ndarray,
    cast_id: np.ndarray, light_id: np.ndarray, setup_a: np.ndarray, setup_b: np.ndarray,
    genre_w: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Sum the weighted components of every keyframe (float32, norm ~ FEATURE_NORM)."""
    f32 = np.float32
    table, framing = vec.table().astype(f32), np.asarray(vec.framing)
    n, dim = kinds.size, table.shape[1]
    noise = 1.0 / np.sqrt(dim)  # a standard normal vector times this has norm ~1
    insert = kinds == INSERT
    blend = np.array([0.0, 0.5, 1.0])  # where each keyframe sits in a panning shot
    # framing per keyframe: a close-up (> 0) shows more of its setup, less of the place
    z = looks.framing_sd * (
        (1 - blend)[None] * framing[setup_a][:, None] + blend[None] * framing[setup_b][:, None]
    )
    shows = (np.where(insert, looks.insert_place, 1.0)[:, None] * np.exp(-z)).astype(f32)
    setup_w = (np.where(insert, looks.insert, looks.setup)[:, None] * np.exp(z)).astype(f32)
    motion = looks.shot * np.exp(looks.motion_sd * rng.normal(size=n) - looks.motion_sd**2)
    style = unit(rng.normal(size=dim))
    genre_dir = unit(latent[structure.genre_idx].sum(0))
    base = (looks.common * common + looks.style * style).astype(f32)[None, :]
    base = base + np.outer(genre_w, genre_dir).astype(f32) + f32(looks.lighting) * table[light_id]
    base += (motion * noise).astype(f32)[:, None] * rng.standard_normal((n, dim), dtype=f32)
    scene = f32(looks.place) * table[place_id] + f32(looks.cast) * table[cast_id]
    first, second = table[setup_a], table[setup_b]
    kf = np.empty((n, 3, dim), dtype=f32)
    for j, b in enumerate(blend):
        setup = first if b == 0 else second if b == 1 else f32(1 - b) * first + f32(b) * second
        kf[:, j] = base + shows[:, j, None] * scene + setup_w[:, j, None] * setup
        kf[:, j] += f32(looks.keyframe * noise) * rng.standard_normal((n, dim), dtype=f32)
    squared = (
        looks.common**2 + looks.style**2 + looks.genre**2 + looks.place**2 + looks.cast**2
        + looks.lighting**2 + looks.setup**2 + looks.shot**2 + looks.keyframe**2
    )  # fmt: skip
    kf *= f32(FEATURE_NORM / np.sqrt(squared))
    return kf


@dataclass
class ProxyWorld:
    """What every video of one benchmark seed shares: latent genre directions, each genre's
    typical places, the common image direction and the two genre banks."""

    latent: np.ndarray  # (21, D) unit
    places: np.ndarray  # (21, P, D) unit
    common: np.ndarray  # (D,) unit
    definition_bank: np.ndarray  # (21, D) float32 unit
    names_bank: np.ndarray  # (21, D) float32 unit


def make_world(seed: int, dim: int = DIM) -> ProxyWorld:
    """The shared world of benchmark ``seed``."""
    rng = np.random.default_rng([seed, 0x9B0C])
    latent = latent_genre_directions(rng, dim)
    places = typical_places(rng, latent, LOOKS.prototypes_per_genre)
    common = unit(rng.normal(size=dim))
    definition = noisy_bank(rng, latent, DEFINITION_BANK)
    names = noisy_bank(rng, latent, NAME_BANK)
    return ProxyWorld(latent, places, common, definition, names)


def generate_video(
    world: ProxyWorld, seed: int, subset: int, number: int
) -> tuple[VideoStructure, RenderedVideo]:
    """Video ``number`` of subset ``subset`` (its own random stream: videos do not depend on
    how many others are generated)."""
    rng = np.random.default_rng([seed, subset, number])
    structure = draw_structure(rng, int(rng.integers(*SHOTS_PER_VIDEO, endpoint=True)))
    video = render_features(rng, structure, world.latent, world.places, world.common)
    return structure, video
