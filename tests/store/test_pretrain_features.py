"""Feature store: round trip, memory mapping, resume, crash safety, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sseg.errors import InputError
from sseg.store.features import FeatureStore, FeatureStoreWriter


def _video(rng: np.random.Generator, n: int, k: int = 3, d: int = 8):
    kf = rng.normal(size=(n, k, d)).astype(np.float32)
    ends = np.cumsum(rng.uniform(0.5, 5.0, size=n))
    starts = np.concatenate([[0.0], ends[:-1]])
    return kf, starts, ends


def test_round_trip_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    videos = {f"v{i}": _video(rng, n) for i, n in enumerate([5, 3, 7, 2])}
    labels = (rng.random(7) < 0.3).astype(int)
    with FeatureStoreWriter(tmp_path / "store", shard_size=6, meta={"backbone": "test"}) as w:
        for vid, (kf, s, e) in videos.items():
            w.add(
                vid,
                kf,
                s,
                e,
                genres=["Drama"] if vid == "v1" else None,
                labels=labels if vid == "v2" else None,
                fps=24.0 if vid == "v0" else None,
            )
    store = FeatureStore(tmp_path / "store")
    assert store.video_ids == list(videos) and len(store) == 4
    assert (store.keyframes_per_shot, store.dim) == (3, 8)
    assert store.meta == {"backbone": "test"}
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert len(index["shards"]) >= 2
    for vid, (kf, s, e) in videos.items():
        got = store.load(vid)
        assert got.keyframes.dtype == np.float16 and got.keyframes.shape == kf.shape
        assert isinstance(got.keyframes, np.memmap)
        np.testing.assert_array_equal(got.keyframes, kf.astype(np.float16))
        np.testing.assert_array_equal(got.starts, s)
        np.testing.assert_array_equal(got.ends, e)
        assert store.num_shots(vid) == len(kf)
    assert store.load("v1").genres == ["Drama"] and store.load("v0").genres == []
    np.testing.assert_array_equal(store.load("v2").labels, labels)
    assert store.load("v0").labels is None
    assert store.load("v0").fps == 24.0 and store.load("v1").fps is None
    seq = store.load("v2").to_shot_sequence()
    assert len(seq) == 7 and seq.labels is not None


def test_resume_skips_stored_videos(tmp_path):
    rng = np.random.default_rng(1)
    with FeatureStoreWriter(tmp_path, shard_size=100) as w:
        w.add("a", *_video(rng, 4))
    with FeatureStoreWriter(tmp_path, shard_size=100) as w:
        assert w.has("a") and not w.has("b")
        with pytest.raises(InputError, match="already"):
            w.add("a", *_video(rng, 4))
        w.add("b", *_video(rng, 3))
    assert FeatureStore(tmp_path).video_ids == ["a", "b"]


def test_killed_writer_leaves_a_loadable_store_and_resumes(tmp_path):
    """SIGKILL in the middle of writing a shard: the store opens without it; resume works."""
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        import sseg.store.features as F
        rng = np.random.default_rng(0)
        w = F.FeatureStoreWriter({str(tmp_path)!r}, shard_size=1)
        w.add("a", rng.normal(size=(4, 3, 8)), np.arange(4.0), np.arange(4.0) + 1)
        real_save = np.save
        def dying_save(handle, array, allow_pickle=False):
            handle.write(b"\\x93NUMPY partial")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        F.np.save = dying_save
        w.add("b", rng.normal(size=(5, 3, 8)), np.arange(5.0), np.arange(5.0) + 1)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode != 0  # killed
    assert list(tmp_path.glob(".shard-*.tmp")), "the kill should leave a temp file behind"
    store = FeatureStore(tmp_path)
    assert store.video_ids == ["a"]
    assert store.load("a").keyframes.shape == (4, 3, 8)
    rng = np.random.default_rng(2)
    with FeatureStoreWriter(tmp_path, shard_size=1) as w:
        assert w.has("a") and not w.has("b")
        w.add("b", *_video(rng, 5))
    assert not list(tmp_path.glob(".shard-*.tmp"))
    store = FeatureStore(tmp_path)
    assert store.video_ids == ["a", "b"] and len(store.load("b")) == 5


def test_failure_before_index_update_keeps_old_index(tmp_path, monkeypatch):
    import sseg.store.features as features

    rng = np.random.default_rng(3)
    w = FeatureStoreWriter(tmp_path, shard_size=1)
    w.add("a", *_video(rng, 2))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(features, "atomic_write_text", boom)
    with pytest.raises(OSError):
        w.add("b", *_video(rng, 2))
    monkeypatch.undo()
    assert FeatureStore(tmp_path).video_ids == ["a"]
    w.close()  # retries the pending shard
    assert FeatureStore(tmp_path).video_ids == ["a", "b"]


def test_second_writer_is_refused(tmp_path):
    with FeatureStoreWriter(tmp_path), pytest.raises(InputError, match="another writer"):
        FeatureStoreWriter(tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"keyframes": np.zeros((3, 8))}, "keyframes must be"),
        ({"keyframes": np.full((2, 3, 8), 1e6)}, "not finite"),
        ({"starts": [0.0]}, "start and end"),
        ({"ends": [0.0, -1.0]}, "end >= start"),
        ({"labels": [0, 2]}, "labels must be"),
        ({"fps": -1.0}, "fps"),
        ({"video_id": ""}, "invalid video id"),
    ],
)
def test_bad_add_raises_input_error(tmp_path, kwargs, match):
    args = {
        "video_id": "v",
        "keyframes": np.zeros((2, 3, 8)),
        "starts": [0.0, 1.0],
        "ends": [1.0, 2.0],
    }
    args.update(kwargs)
    with FeatureStoreWriter(tmp_path) as w, pytest.raises(InputError, match=match):
        w.add(**args)


def test_dimension_mismatch_is_refused(tmp_path):
    with FeatureStoreWriter(tmp_path) as w:
        w.add("a", np.zeros((2, 3, 8)), [0, 1], [1, 2])
        with pytest.raises(InputError, match="store holds"):
            w.add("b", np.zeros((2, 3, 4)), [0, 1], [1, 2])


def test_missing_and_corrupt_stores(tmp_path):
    with pytest.raises(InputError, match="not found"):
        FeatureStore(tmp_path / "nope")
    with pytest.raises(InputError, match="index.json is missing"):
        FeatureStore(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        FeatureStore(tmp_path)

    store_dir = tmp_path / "s"
    with FeatureStoreWriter(store_dir) as w:
        w.add("a", np.zeros((2, 3, 8)), [0, 1], [1, 2])
    with pytest.raises(InputError, match="not in the feature store"):
        FeatureStore(store_dir).load("zzz")
    shard = store_dir / "shard-00000.keyframes.npy"
    shard.write_bytes(shard.read_bytes()[:60])  # truncated
    with pytest.raises(InputError, match="shard-00000.keyframes.npy"):
        FeatureStore(store_dir).load("a")
    shard.unlink()
    with pytest.raises(InputError, match="missing"):
        FeatureStore(store_dir).load("a")
