"""Synthetic corpus: film-like shot durations, scene structure, written as a store."""

from __future__ import annotations

import numpy as np

from sseg.store.features import FeatureStore
from sseg.training.synthetic import GENRES, generate_corpus, shot_durations, write_synthetic_store


def test_shot_durations_are_film_like():
    d = shot_durations(np.random.default_rng(0), 50_000)
    assert abs(np.median(d) - 2.75) < 0.05
    assert abs((d > 10).mean() - 0.08) < 0.005
    assert (d > 0).all()


def test_scene_structure_is_visible_in_the_features():
    videos, bank = generate_corpus(4, shots=(80, 120), dim=64, seed=3)
    assert bank.shape == (21, 64) and len(GENRES) == 21
    for v in videos:
        n = len(v.labels)
        assert v.keyframes.shape == (n, 3, 64)
        assert v.labels[-1] == 1
        np.testing.assert_array_equal(
            np.nonzero(np.diff(v.scene_ids))[0], np.nonzero(v.labels[:-1])[0]
        )
        assert 1 <= len(v.genres) <= 3 and set(v.genres) <= set(GENRES)
        np.testing.assert_allclose(v.ends - v.starts, np.diff(np.r_[0.0, v.ends]))
        shots = v.keyframes.mean(1)
        shots = shots / np.linalg.norm(shots, axis=1, keepdims=True)
        sim = (shots[:-1] * shots[1:]).sum(1)
        same = v.scene_ids[:-1] == v.scene_ids[1:]
        assert sim[same].mean() > sim[~same].mean() + 0.2


def test_generation_is_deterministic_and_store_has_labels(tmp_path):
    a, _ = generate_corpus(2, dim=16, seed=7)
    b, _ = generate_corpus(2, dim=16, seed=7)
    np.testing.assert_array_equal(a[1].keyframes, b[1].keyframes)
    store = write_synthetic_store(tmp_path / "s", 3, shots=(20, 30), dim=16, seed=1)
    assert isinstance(store, FeatureStore) and len(store) == 3
    video = store.load(store.video_ids[0])
    assert video.labels is not None and video.labels.sum() >= 1 and video.fps == 24.0
    assert np.load(tmp_path / "s" / "genre_bank.npy").shape == (21, 16)
