"""Distributed extraction under torchrun (2 gloo ranks) equals one process bit for bit,
per-rank resume after a kill, and the merge of rank parts into one index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from sseg.cli import main
from sseg.errors import InputError
from sseg.store.features import FeatureStore, FeatureStoreWriter, part_name
from sseg.store.store_tools import merge_store


def _folders(root, shots_per_video, seed=0):
    rng = np.random.default_rng(seed)
    for v, shots in enumerate(shots_per_video):
        folder = root / f"tt{v:02d}"
        folder.mkdir(parents=True)
        for s in range(shots):
            colour = rng.integers(0, 256, size=3)
            for j in range(3):
                img = np.clip(colour + rng.integers(-30, 30, size=(32, 48, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(folder / f"shot_{s:04d}_img_{j}.png")


def _extract_cmd(root, out, timings, nproc=None):
    args = ["-m", "sseg", "extract", str(root), "--out", str(out), "--random-init",
            "--device", "cpu", "--batch-size", "4", "--shard-size", "3", "--quiet",
            "--timings", str(timings)]  # fmt: skip
    if nproc is None:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(nproc), *args]  # fmt: skip


KILLED_RANK = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from sseg.store.features import FeatureStore, FeatureStoreWriter

    reference, out, video = sys.argv[1:4]
    v = FeatureStore(reference).load(video)
    w = FeatureStoreWriter(out, shard_size=100, rank=1)
    w.meta.update(FeatureStore(reference).meta)
    w.add(video, np.asarray(v.keyframes), v.starts, v.ends, v.genres, v.labels, v.fps, position=1)
    w.flush()
    os._exit(9)  # killed: the part stays, nothing is merged
    """
)


def test_two_rank_extraction_equals_one_process_bit_for_bit(tmp_path):
    root = tmp_path / "keyframes"
    _folders(root, [3, 2, 4, 1, 2])
    timings = tmp_path / "shots.jsonl"
    rows = [{"video": "tt00", "start": s, "end": e, "label": lab, "genres": ["Drama"]}
            for s, e, lab in [(0.0, 2.5, 0), (2.5, 3.0, 1), (3.0, 9.0, 0)]]  # fmt: skip
    timings.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    one = tmp_path / "one"
    proc = subprocess.run(_extract_cmd(root, one, timings), capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Rank 1 of an earlier 2-rank run was killed after storing tt01 (its first video).
    two = tmp_path / "two"
    (tmp_path / "killed.py").write_text(KILLED_RANK)
    killed = subprocess.run([sys.executable, str(tmp_path / "killed.py"), str(one), str(two),
                             "tt01"], capture_output=True, text=True, env=env)  # fmt: skip
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert (two / part_name(1)).is_file() and not (two / "index.json").exists()
    with pytest.raises(InputError, match="sseg store merge"):
        FeatureStore(two)

    proc = subprocess.run(_extract_cmd(root, two, timings, nproc=2), capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 1/2: extracted 1 video(s), skipped 1 already stored" in proc.stdout
    assert "rank 0/2: extracted 3 video(s)" in proc.stdout
    assert proc.stdout.count("(merged the index)") >= 1
    assert not list(two.glob("index.rank-*.json"))  # merged

    a, b = FeatureStore(one), FeatureStore(two)
    assert a.video_ids == b.video_ids == [f"tt{v:02d}" for v in range(5)]
    assert a.meta == b.meta and (a.keyframes_per_shot, a.dim) == (b.keyframes_per_shot, b.dim)
    for video_id in a.video_ids:
        x, y = a.load(video_id), b.load(video_id)
        assert np.array_equal(x.keyframes.view(np.uint16), y.keyframes.view(np.uint16))
        np.testing.assert_array_equal(x.starts, y.starts)
        np.testing.assert_array_equal(x.ends, y.ends)
        assert x.genres == y.genres and x.fps == y.fps
        assert (x.labels is None) == (y.labels is None)
        if x.labels is not None:
            np.testing.assert_array_equal(x.labels, y.labels)
    bank_a, bank_b = np.load(one / "genre_bank.npy"), np.load(two / "genre_bank.npy")
    assert np.array_equal(bank_a, bank_b)
    index = json.loads((two / "index.json").read_text())
    assert all(len(s["sha256"]) == 3 for s in index["shards"])
    assert any(s["keyframes"].startswith("shard-r00001-") for s in index["shards"])


def _video(rng, n, d=8):
    ends = np.cumsum(rng.uniform(0.5, 3.0, size=n))
    return rng.normal(size=(n, 3, d)), np.concatenate([[0.0], ends[:-1]]), ends


def test_rank_parts_merge_in_input_order_and_locks(tmp_path, capsys):
    rng = np.random.default_rng(0)
    videos = {f"v{i}": _video(rng, n) for i, n in enumerate([3, 2, 4, 2, 5])}
    order = list(videos)
    w0 = FeatureStoreWriter(tmp_path, shard_size=4, rank=0)
    w1 = FeatureStoreWriter(tmp_path, shard_size=4, rank=1)
    with pytest.raises(InputError, match="another writer of rank 1"):
        FeatureStoreWriter(tmp_path, rank=1)
    with pytest.raises(InputError, match="another writer"):
        FeatureStoreWriter(tmp_path)  # a direct writer needs the store to itself
    with pytest.raises(InputError, match="another writer"):
        merge_store(tmp_path)
    for pos in (1, 3):
        w1.add(order[pos], *videos[order[pos]], position=pos)
    for pos in (0, 2, 4):
        w0.add(order[pos], *videos[order[pos]], position=pos)
    w0.close()
    assert not w0.merged and (tmp_path / part_name(0)).is_file()  # rank 1 still writing
    w1.close()
    assert w1.merged and not list(tmp_path.glob("index.rank-*"))
    store = FeatureStore(tmp_path)
    assert store.video_ids == order
    for video_id, (kf, starts, _) in videos.items():
        np.testing.assert_array_equal(store.load(video_id).keyframes, kf.astype(np.float16))
        np.testing.assert_array_equal(store.load(video_id).starts, starts)

    # A later run's rank 0 resumes from the merged index: new shards never reuse a name.
    with FeatureStoreWriter(tmp_path, rank=0) as w:
        assert w.has("v1") and w.has("v4")
        w.add("v5", *_video(rng, 2), position=5)
    index = json.loads((tmp_path / "index.json").read_text())
    names = [s["keyframes"] for s in index["shards"]]
    assert len(names) == len(set(names)) and FeatureStore(tmp_path).video_ids[-1] == "v5"

    # merge is idempotent: a part re-listing indexed shards adds nothing twice
    (tmp_path / part_name(3)).write_text(json.dumps({**index, "rank": 3}))
    assert main(["store", "merge", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "merged 1 part(s): 0 shard(s), 0 video(s) added, 6 duplicate(s) dropped" in out
    assert FeatureStore(tmp_path).video_ids == [*order, "v5"]
