"""Store integrity: checksums in the index, ``sseg store verify``, cheap checks on open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseg.cli import main
from sseg.errors import InputError
from sseg.store.features import FeatureStore, FeatureStoreWriter
from sseg.store.store_tools import file_sha256, verify_store


def _store(path, videos=(4, 3, 5), shard_size=7):
    rng = np.random.default_rng(0)
    with FeatureStoreWriter(path, shard_size=shard_size) as w:
        for i, n in enumerate(videos):
            ends = np.arange(1, n + 1, dtype=float)
            w.add(f"v{i}", rng.normal(size=(n, 3, 8)), ends - 1, ends)
    return FeatureStore(path)


def test_index_records_size_and_sha256_of_every_shard_file(tmp_path):
    _store(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    for shard in index["shards"]:
        for kind in ("keyframes", "times", "labels"):
            path = tmp_path / shard[kind]
            assert shard["bytes"][kind] == path.stat().st_size
            assert shard["sha256"][kind] == file_sha256(path)


def test_one_flipped_byte_is_caught_by_verify_and_named(tmp_path, capsys):
    store = _store(tmp_path)
    assert main(["store", "verify", str(tmp_path), "--quiet"]) == 0
    assert "ok: 6 shard file(s)" in capsys.readouterr().out
    shard = store.shard_file("v2")
    data = bytearray(shard.read_bytes())
    data[len(data) - 7] ^= 0x40  # in place: same size, same header
    shard.write_bytes(bytes(data))

    report = verify_store(tmp_path)
    assert [b.path for b in report.bad] == [shard] and report.bad[0].videos == ["v2"]
    assert main(["store", "verify", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert shard.name in err and "SHA-256" in err and "v2" in err
    assert "1 of 6 shard file(s) failed" in err


def test_truncated_shard_is_caught_on_open_naming_video_and_file(tmp_path):
    store = _store(tmp_path)
    shard = store.shard_file("v0")
    shard.write_bytes(shard.read_bytes()[:-16])
    with pytest.raises(InputError, match=r"video 'v0'.*bytes, the index says") as info:
        FeatureStore(tmp_path).load("v0")
    assert shard.name in str(info.value)
    assert FeatureStore(tmp_path).load("v2") is not None  # other shards still load
    assert not verify_store(tmp_path).ok


def test_verify_names_missing_files_and_stores_without_checksums(tmp_path, capsys):
    store = _store(tmp_path)
    store.shard_file("v2").unlink()
    report = verify_store(tmp_path)
    assert len(report.bad) == 1 and "missing" in report.bad[0].problem

    old = tmp_path / "old"
    _store(old)
    index = json.loads((old / "index.json").read_text())
    for shard in index["shards"]:
        del shard["sha256"], shard["bytes"]
    (old / "index.json").write_text(json.dumps(index))
    assert main(["store", "verify", str(old), "--quiet"]) == 0
    assert "6 without a recorded checksum" in capsys.readouterr().out
    assert main(["store", "verify", str(tmp_path / "nope"), "--quiet"]) == 2


def test_pending_videos_are_written_at_least_every_flush_seconds(tmp_path):
    rng = np.random.default_rng(1)
    with FeatureStoreWriter(tmp_path, shard_size=10_000, flush_seconds=0.0) as w:
        for i in range(3):
            w.add(f"v{i}", rng.normal(size=(2, 3, 8)), [0.0, 1.0], [1.0, 2.0])
            assert FeatureStore(tmp_path).video_ids == [f"v{j}" for j in range(i + 1)]
    assert len(json.loads((tmp_path / "index.json").read_text())["shards"]) == 3
