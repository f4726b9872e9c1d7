"""Proxy benchmark: MovieNet-calibrated statistics, visual difficulties, store layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseg.benchmarks import (
    MOVIENET_TEST_FIGURES,
    ProxyBenchmark,
    neighbour_cosine_ap,
    proxy_statistics,
    write_proxy_benchmark,
)
from sseg.benchmarks.proxy import subset_sizes
from sseg.benchmarks.proxy_generator import (
    FPS,
    INSERT,
    MOVE,
    SAME_PLACE,
    draw_structure,
    generate_video,
    make_world,
)
from sseg.benchmarks.proxy_genres import CONVENTIONS, GenreConventions
from sseg.benchmarks.proxy_stats import (
    context_rule_scores,
    neighbour_cosine_scores,
    statistics_of,
)
from sseg.data.annotations import select_videos
from sseg.evaluation.metrics import average_precision
from sseg.modeling.genres import GENRES, genre_mask
from sseg.store.features import FeatureStore, FeatureStoreWriter

# Relative tolerance per figure on 250 generated videos (~130k shots, structure only).
TOLERANCE = {
    "shots_over_30s": 0.2,
    "shots_over_60s": 0.35,
    "scene_shots_p90": 0.15,
    "scene_median_s": 0.15,
    "scene_mean_s": 0.15,
    "boundary_rate": 0.12,
}


@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(123)
    return [draw_structure(rng, int(rng.integers(400, 601))) for _ in range(250)]


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory) -> ProxyBenchmark:
    return write_proxy_benchmark(tmp_path_factory.mktemp("proxy") / "bench", scale=0.1, seed=3)


def test_shot_and_scene_statistics_match_movienet(structures):
    stats = statistics_of([s.frames / FPS for s in structures], [s.labels for s in structures])
    assert stats["shots"] > 100_000
    for key, target in MOVIENET_TEST_FIGURES.items():
        tolerance = TOLERANCE.get(key, 0.1)
        assert abs(stats[key] - target) <= tolerance * target, (key, stats[key], target)
    # scene-ending shots are longer, as in the real data
    assert stats["end_shot_median_s"] > 1.3 * stats["other_shot_median_s"]


def test_proxy_statistics_counts_scenes_like_the_metrics(tmp_path):
    with FeatureStoreWriter(tmp_path / "s") as writer:
        starts = np.array([0.0, 2.0, 3.0, 10.0, 12.0])
        ends = np.array([2.0, 3.0, 10.0, 12.0, 50.0])
        kf = np.ones((5, 3, 4), np.float32)
        writer.add("a", kf, starts, ends, labels=[0, 1, 1, 0, -100])
    stats = proxy_statistics(tmp_path / "s", ["a"])
    assert stats["scenes"] == 2 and stats["boundary_rate"] == pytest.approx(0.5)
    assert stats["scene_shots_median"] == 1.5 and stats["scene_mean_s"] == pytest.approx(5.0)
    assert stats["shots_over_30s"] == pytest.approx(0.2) and stats["shot_median_s"] == 2.0
    assert stats["end_shot_mean_s"] == pytest.approx(4.0)
    assert stats["other_shot_mean_s"] == pytest.approx(2.0)


def test_genre_conventions_shape_the_editing():
    action, drama = CONVENTIONS["Action"], CONVENTIONS["Drama"]
    assert action.cut_in > 3 * drama.cut_in and action.pace < drama.pace
    assert drama.dialogue > 3 * action.dialogue and drama.same_place > action.same_place
    rng = np.random.default_rng(0)
    inserts = {"Action": [], "Drama": []}
    for _ in range(300):
        s = draw_structure(rng, 300)
        if len(s.genre_idx) == 1 and s.genres[0] in inserts:
            inserts[s.genres[0]].append((s.kinds == INSERT).mean())
    assert np.mean(inserts["Action"]) > 2 * np.mean(inserts["Drama"])
    assert isinstance(action, GenreConventions)


def test_visual_difficulties_are_present():
    world = make_world(0)
    moves, plain, same_place, ends, alternations = [], [], 0, 0, 0
    for number in range(6):
        structure, video = generate_video(world, 0, 2, number)
        kf = video.keyframes.astype(np.float64)
        kf /= np.linalg.norm(kf, axis=-1, keepdims=True)
        spread = (kf[:, 0] * kf[:, 2]).sum(-1)
        long = structure.frames / FPS > 10
        moves += list(spread[video.kinds == MOVE])
        plain += list(spread[long & (video.kinds == 0)])
        same_place += int((video.boundary_kinds == SAME_PLACE).sum())
        ends += int((structure.labels == 1).sum())
        # A B A B: within a scene, shot i+2 often looks more like shot i than shot i+1 does
        shots = kf.mean(1)
        shots /= np.linalg.norm(shots, axis=-1, keepdims=True)
        step1 = (shots[:-2] * shots[1:-1]).sum(-1)
        step2 = (shots[:-2] * shots[2:]).sum(-1)
        same = structure.scene_ids[:-2] == structure.scene_ids[2:]
        alternations += int((step2[same] > step1[same] + 0.1).sum())
        norms = np.linalg.norm(video.keyframes, axis=-1)
        assert 8 < norms.mean() < 12
    assert len(moves) >= 5 and np.mean(moves) < np.mean(plain) - 0.1
    assert 0.1 * ends < same_place < 0.6 * ends
    assert alternations > 50


def test_genre_is_visible_and_banks_are_noisy_views():
    world = make_world(1)
    latent = world.latent
    own, other = [], []
    for number in range(4):
        structure, video = generate_video(world, 1, 0, number)
        shots = video.keyframes.mean(1)
        shots /= np.linalg.norm(shots, axis=-1, keepdims=True)
        cos = shots @ latent.T  # (N, 21)
        mask = np.zeros(len(GENRES), bool)
        mask[structure.genre_idx] = True
        own.append(cos[:, mask].mean())
        other.append(cos[:, ~mask].mean())
        assert genre_mask(structure.genres).sum() == len(structure.genre_idx)
    assert np.mean(own) > np.mean(other) + 0.1
    for bank, expected in ((world.definition_bank, 0.75), (world.names_bank, 0.45)):
        assert bank.shape == (21, 512) and bank.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, atol=1e-5)
        assert np.diag(bank @ latent.T).mean() == pytest.approx(expected, abs=0.06)


def test_neighbour_cosine_is_far_from_perfect_but_context_recovers_scenes():
    world = make_world(0)
    neighbour, context, labels = [], [], []
    for number in range(8):
        structure, video = generate_video(world, 0, 2, number)
        neighbour.append(neighbour_cosine_scores(video.keyframes))
        context.append(context_rule_scores(video.keyframes))
        labels.append(structure.labels)
    lab = np.concatenate(labels)
    ap_neighbour = average_precision(np.concatenate(neighbour), lab)
    ap_context = average_precision(np.concatenate(context), lab)
    assert 0.2 < ap_neighbour < 0.5
    assert ap_context > ap_neighbour + 0.2


def test_written_benchmark_is_a_normal_store(small_bench):
    bench = small_bench
    store = FeatureStore(bench.store)
    split = json.loads(bench.split.read_text())
    assert set(split) == {"train", "val", "test", "unlabeled", "all"}
    assert split["all"] == split["train"] + split["val"] + split["test"]
    assert set(store.video_ids) == set(split["all"]) | set(split["unlabeled"])
    for subset in ("train", "val", "test", "unlabeled"):
        assert select_videos(store, bench.split, subset) == split[subset]
    assert store.dim == 512 and store.keyframes_per_shot == 3
    assert store.meta["genre_bank"] == bench.genre_bank.name
    assert bench.genre_bank.parent == bench.store and bench.genre_bank_names.is_file()
    assert np.load(bench.genre_bank).shape == np.load(bench.genre_bank_names).shape == (21, 512)
    for vid in split["test"]:
        video = store.load(vid)
        assert video.labels is not None and video.labels[-1] == -100
        assert set(np.unique(video.labels[:-1])) <= {0, 1}
        assert 1 <= len(video.genres) <= 3 and set(video.genres) <= set(GENRES)
        assert video.fps == FPS and (video.starts[1:] == video.ends[:-1]).all()
    assert all(store.load(v).labels is None for v in split["unlabeled"])
    stats = proxy_statistics(store, split["all"])
    assert 0.04 < stats["boundary_rate"] < 0.12
    assert 0.15 < neighbour_cosine_ap(store, split["all"]) < 0.6


def test_write_is_idempotent_and_regenerates_on_other_seed(small_bench, tmp_path):
    root = small_bench.store.parent
    index = small_bench.store / "index.json"
    before = index.stat().st_mtime_ns
    again = write_proxy_benchmark(root, scale=0.1, seed=3)
    assert again == small_bench and index.stat().st_mtime_ns == before
    other = write_proxy_benchmark(tmp_path / "b", scale=0.05, seed=4)
    first = FeatureStore(other.store).load("proxy-test-0000").keyframes
    assert not np.array_equal(
        first, FeatureStore(small_bench.store).load("proxy-test-0000").keyframes
    )
    # an incomplete folder (no manifest) is replaced, not reused
    (tmp_path / "b" / "proxy.json").unlink()
    (tmp_path / "b" / "stray.txt").write_text("x")
    again = write_proxy_benchmark(tmp_path / "b", scale=0.05, seed=4)
    assert not (tmp_path / "b" / "stray.txt").exists()
    np.testing.assert_array_equal(
        FeatureStore(again.store).load("proxy-test-0000").keyframes, first
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_scale_multiplies_every_subset():
    assert subset_sizes(1.0) == {"train": 48, "val": 12, "test": 20, "unlabeled": 40}
    assert subset_sizes(2.0) == {"train": 96, "val": 24, "test": 40, "unlabeled": 80}
    assert min(subset_sizes(0.01).values()) == 1
    with pytest.raises(ValueError, match="scale"):
        write_proxy_benchmark("unused", scale=0)


def test_commands_run_on_the_benchmark_unchanged(small_bench, tmp_path):
    from sseg.cli import main

    data = ["--features", str(small_bench.store), "--split", str(small_bench.split)]
    model = tmp_path / "ft" / "model.safetensors"
    args = ["finetune", *data, "--out", str(tmp_path / "ft"), "--steps", "2", "--hidden", "32"]
    args += ["--heads", "2", "--layers", "1", "--batch-size", "8", "--no-progress"]
    args += ["--genre-bank", str(small_bench.genre_bank_names)]
    assert main(args) == 0 and model.is_file()
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), *data, "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics["videos"] == len(json.loads(small_bench.split.read_text())["test"])
