"""Pre-training input: prefetch, video lists and splits, validation, metrics CSV, bad
videos, out_dir lock, world-size independence of batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sseg.errors import InputError
from sseg.store.features import FeatureStore
from sseg.training.loop import DistInfo, lock_out_dir
from sseg.training.pretrain import run_pretraining
from sseg.training.pretrain_config import PretrainConfig, load_config
from sseg.training.pretrain_data import (
    PrefetchingBatcher,
    StoreWindowBatcher,
    read_video_list,
    select_videos,
)
from sseg.training.train_log import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(make_synthetic_store):
    return make_synthetic_store(8, shots=(25, 60), dim=16, seed=4)


def _cfg(store, out_dir, **kw) -> PretrainConfig:
    base = dict(
        store=str(store.root), out_dir=str(out_dir), hidden=16, heads=2, layers=1, proj_dim=8,
        batch_size=6, steps=6, warmup_steps=1, lr=2e-3, checkpoint_every=3, device="cpu",
    )  # fmt: skip
    base.update(kw)
    return PretrainConfig(**base)


def _videos(store):
    return [store.load(v) for v in store.video_ids]


def _same(a, b) -> bool:
    pairs = zip(a.__dict__.values(), b.__dict__.values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_prefetched_batches_are_the_synchronous_batches(store):
    gather = StoreWindowBatcher(_videos(store), 17, 3, "idw", 5, seed=1)
    prefetch = PrefetchingBatcher(gather, "cpu", depth=3, last_step=8)
    try:
        for step in [0, 1, 2, 3, 7, 2]:
            assert _same(prefetch(step, 0), gather(step, 0))
    finally:
        prefetch.close()
    assert prefetch.misses == 3  # the first call, the jump to 7 (beyond 3 ahead), back to 2


def test_batches_do_not_depend_on_the_world_size(store):
    videos = _videos(store)
    one = StoreWindowBatcher(videos, 17, 3, "idw", 8, seed=2, world_size=1)
    two = StoreWindowBatcher(videos, 17, 3, "idw", 4, seed=2, world_size=2)
    for step in range(3):
        whole = one(step, 0)
        halves = [two(step, r) for r in (0, 1)]
        for name in ("keyframes", "valid", "lengths", "anchors"):
            joined = torch.cat([getattr(h, name) for h in halves])
            assert torch.equal(getattr(whole, name), joined), name


def test_video_lists_and_split_files(store, tmp_path):
    ids = store.video_ids
    listing = tmp_path / "train.txt"
    listing.write_text(f"# training videos\n{ids[2]}\n\n{ids[0]}  # first\n")
    assert read_video_list(str(listing))[0] == [ids[2], ids[0]]
    splits = tmp_path / "split.json"
    splits.write_text(json.dumps({"train": ids[:5], "val": ids[5:]}))
    assert select_videos(store, f"{splits}:val") == ids[5:]
    assert select_videos(store, None, exclude=set(ids[5:])) == ids[:5]
    with pytest.raises(InputError, match="split 'test' not in the file"):
        select_videos(store, f"{splits}:test")
    listing.write_text("nope\n")
    with pytest.raises(InputError, match="train.txt: 1 listed video"):
        select_videos(store, str(listing))

    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"store": "s", "out_dir": "o", "videos": "split.json:train"}))
    assert load_config(cfg_file).videos == f"{tmp_path / 'split.json'}:train"


def test_validation_metrics_csv_and_resume(store, tmp_path):
    splits = tmp_path / "split.json"
    splits.write_text(json.dumps({"train": store.video_ids[:6], "val": store.video_ids[6:]}))
    cfg = _cfg(store, tmp_path / "run", videos=f"{splits}:train", val_videos=f"{splits}:val",
               val_every=2, val_batches=2)  # fmt: skip
    summary = run_pretraining(cfg, progress=False)
    assert summary["videos"] == 6 and summary["bad_videos"] == 0
    rows = read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert float(row["l_con"]) > 0 and float(row["l_pb"]) > 0
        assert 0 <= float(row["pb_acc"]) <= 1 and 0 < float(row["pb_pos_frac"]) < 1
        assert float(row["data_ms"]) >= 0 and float(row["windows_s"]) > 0
    assert [bool(r["val_loss"]) for r in rows] == [False, True, False, True, False, True]
    assert np.isclose(float(rows[0]["loss"]), summary["history"][0], rtol=1e-5)

    # a resumed run rewrites the rows after its checkpoint and continues the log
    (tmp_path / "run" / "metrics.csv").open("a").write("7,0.5,garbage\n")
    resumed = run_pretraining(_cfg(store, tmp_path / "run", videos=f"{splits}:train",
                                   val_videos=f"{splits}:val", val_every=2, val_batches=2,
                                   steps=8), resume=True, progress=False)  # fmt: skip
    rows2 = read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows2] == list(range(1, 9))
    assert rows2[:6] == rows and resumed["steps"] == 8


def test_non_finite_features_name_video_and_shard_or_are_skipped(make_synthetic_store, tmp_path):
    bad_store = make_synthetic_store(4, shots=(25, 40), dim=16, seed=9)
    victim = bad_store.video_ids[1]
    shard = FeatureStore(bad_store.root).shard_file(victim)
    entry = json.loads((bad_store.root / "index.json").read_text())["videos"][victim]
    data = np.load(shard, mmap_mode="r+")
    data[entry["offset"] + 3, 1, 5] = np.nan  # bytes changed in place (size unchanged)
    data.flush()
    del data
    cfg = _cfg(bad_store, tmp_path / "a", steps=4, batch_size=8)
    with pytest.raises(InputError, match=rf"video '{victim}': non-finite features") as info:
        run_pretraining(cfg, progress=False)
    assert shard.name in str(info.value)
    with pytest.warns(UserWarning, match=rf"skipped 1 bad video\(s\), e.g. {victim}: .*non-finite"):
        summary = run_pretraining(
            _cfg(bad_store, tmp_path / "b", steps=2, skip_bad_videos=True), progress=False
        )
    assert summary["bad_videos"] == 1 and summary["videos"] == 3


def test_out_dir_is_locked_against_a_second_run(store, tmp_path):
    busy = pytest.raises(InputError, match="another run is writing")
    with lock_out_dir(tmp_path / "run", DistInfo()), busy:
        run_pretraining(_cfg(store, tmp_path / "run"), progress=False)
    assert run_pretraining(_cfg(store, tmp_path / "run", steps=1), progress=False)["steps"] == 1


def test_explicit_video_ids_override_the_config(store, tmp_path):
    from sseg.training.pretrain_data import PretrainData

    cfg = _cfg(store, tmp_path, videos=None)
    data = PretrainData(cfg, store, DistInfo(), torch.device("cpu"), store.video_ids[:3])
    try:
        assert data.videos == 3
    finally:
        data.close()
    with pytest.raises(InputError, match="'zz' is not in the feature store"):
        PretrainData(cfg, store, DistInfo(), torch.device("cpu"), ["zz"])
