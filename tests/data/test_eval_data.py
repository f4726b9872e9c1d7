"""Annotation loaders: real formats written to disk, regular and irregular."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseg.data.bbc import load_bbc_annotators, load_bbc_scenes_by_frames
from sseg.data.jsonl import load_jsonl, write_jsonl
from sseg.data.movienet import load_movienet, load_movienet_split
from sseg.data.predictions import read_predictions, write_predictions
from sseg.errors import InputError
from sseg.shots import ShotSequence

SHOTS = ["0 23 5 11 17", "24 71 30 47 65", "72 143 80 107 130", "144 167 150 155 160"]


def _movienet(tmp_path, labels, shots=SHOTS, imdb="tt0000001"):
    (tmp_path / "shot_movie318").mkdir(exist_ok=True)
    (tmp_path / "label318").mkdir(exist_ok=True)
    (tmp_path / "shot_movie318" / f"{imdb}.txt").write_text("\n".join(shots) + "\n")
    (tmp_path / "label318" / f"{imdb}.txt").write_text("\n".join(labels) + "\n")
    return tmp_path


def test_movienet_regular_file(tmp_path):
    root = _movienet(tmp_path, ["0000 0", "0001 1", "0002 -1"])
    seq = load_movienet(root, "tt0000001")
    # end frames are inclusive: shot 0 = frames 0..23 = [0, 1) s at 24 fps
    np.testing.assert_allclose(seq.starts, [0, 1, 3, 6])
    np.testing.assert_allclose(seq.ends, [1, 3, 6, 7])
    # -1 counts as a boundary; the last shot has no line -> unknown
    assert seq.labels.tolist() == [0, 1, 1, -100]
    assert seq.fps == 24.0


def test_movienet_irregular_line_counts(tmp_path):
    full = load_movienet(_movienet(tmp_path, ["0000 0", "0001 1", "0002 0", "0003 1"]), "tt0000001")
    assert full.labels.tolist() == [0, 1, 0, 1]  # an N-th line labels the last shot
    short = load_movienet(_movienet(tmp_path, ["0000 1", "0001 0"]), "tt0000001")
    assert short.labels.tolist() == [1, 0, -100, -100]  # missing tail = unknown


@pytest.mark.parametrize(
    ("labels", "line", "words"),
    [
        (["0000 0", "0002 1"], 2, "out of sequence"),
        (["0001 0"], 1, "out of sequence"),
        (["0000 0", "0001 2"], 2, "0, 1 or -1"),
        (["0000 0", "0001"], 2, "shot index"),
        (["0000 0", "0001 x"], 2, "integers"),
        (["0000 0", "0001 0", "0002 0", "0003 0", "0004 1"], 5, "has 4 shots"),
    ],
)
def test_movienet_bad_label_files_name_file_and_line(tmp_path, labels, line, words):
    root = _movienet(tmp_path, labels)
    with pytest.raises(InputError) as info:
        load_movienet(root, "tt0000001")
    assert info.value.line == line and words in str(info.value)
    assert info.value.path.endswith("label318/tt0000001.txt")


def test_movienet_bad_shot_file(tmp_path):
    root = _movienet(tmp_path, ["0000 0"], shots=["0 23 1 2 3", "30 20 1 2 3"])
    with pytest.raises(InputError, match=r"shot_movie318/tt0000001.txt:2: bad shot frames"):
        load_movienet(root, "tt0000001")
    root = _movienet(tmp_path, ["0000 0"], shots=["10 23", "0 5"])
    with pytest.raises(InputError, match=r":2: .*before the previous"):
        load_movienet(root, "tt0000001")


def test_movienet_without_labels_and_with_meta(tmp_path):
    root = _movienet(tmp_path, ["0000 0"])
    (root / "label318" / "tt0000001.txt").unlink()
    (root / "meta").mkdir()
    (root / "meta" / "tt0000001.json").write_text(json.dumps({"genres": ["Drama", "Crime"]}))
    seq = load_movienet(root, "tt0000001")
    assert seq.labels is None and seq.genres == ["Drama", "Crime"]


def test_movienet_split(tmp_path):
    path = tmp_path / "split318.json"
    path.write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
    split = load_movienet_split(tmp_path)
    assert split["test"] == ["d"] and split["all"] == ["a", "b", "c", "d"]
    path.write_text('{"train": ["a",\n "b"')
    with pytest.raises(InputError, match="split318.json"):
        load_movienet_split(path)


BBC_SHOTS = "0\t49\n50\t99\n100\t174\n175\t249\n250\t299\n"


def test_bbc_scenes_by_frames(tmp_path):
    shots = tmp_path / "shots.txt"
    shots.write_text(BBC_SHOTS)
    scenes = tmp_path / "scenesByFrames.txt"
    # second scene ends inside shot 3 (frame 200) -> rounds to the shot containing it
    scenes.write_text("0\t99\n100\t200\n201\t299\n")
    seq = load_bbc_scenes_by_frames(shots, scenes, "ep01")
    assert seq.labels.tolist() == [0, 1, 0, 1, -100]
    np.testing.assert_allclose(seq.starts, [0, 2, 4, 7, 10])
    np.testing.assert_allclose(seq.ends, [2, 4, 7, 10, 12])
    scenes.write_text("0\t99\n100\t400\n")
    with pytest.raises(InputError, match=r"scenesByFrames.txt:2: .*inside no shot"):
        load_bbc_scenes_by_frames(shots, scenes, "ep01")
    shots.write_text("0\t49\n50 99 3\n")
    with pytest.raises(InputError, match=r"shots.txt:2"):
        load_bbc_scenes_by_frames(shots, scenes, "ep01")


def test_bbc_annotators_majority_and_single(tmp_path):
    shots = tmp_path / "shots.txt"
    shots.write_text(BBC_SHOTS)
    paths = []
    for i, text in enumerate(["0,2,4", "0, 2,3", "0,3\n4"]):
        paths.append(tmp_path / f"annotator_{i}.txt")
        paths[-1].write_text(text)
    # starts 2 (x2), 3 (x2), 4 (x2) -> boundaries after shots 1, 2, 3 by majority
    assert load_bbc_annotators(shots, paths, "ep").labels.tolist() == [0, 1, 1, 1, -100]
    assert load_bbc_annotators(shots, paths, "ep", annotator=0).labels.tolist() == [
        0, 1, 0, 1, -100
    ]  # fmt: skip
    paths[1].write_text("0,2,9")
    with pytest.raises(InputError, match=r"annotator_1.txt:1: .*outside"):
        load_bbc_annotators(shots, paths, "ep")
    paths[1].write_text("0;2")
    with pytest.raises(InputError, match=r"annotator_1.txt:1"):
        load_bbc_annotators(shots, paths, "ep")


def test_jsonl_round_trip_and_partial_labels(tmp_path):
    path = tmp_path / "shots.jsonl"
    lines = [
        {"video": "a", "start": 0, "end": 2.5, "label": 0, "genres": ["Drama"]},
        {"video": "a", "start": 2.5, "end": 4, "label": 1},
        {"video": "a", "start": 4, "end": 9},
        {"video": "b", "start": 0, "end": 1, "fps": 25},
        {"video": "b", "start": 1, "end": 3},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    a, b = load_jsonl(path)
    assert a.video_id == "a" and a.labels.tolist() == [0, 1, -100] and a.genres == ["Drama"]
    assert b.labels is None and b.fps == 25.0
    np.testing.assert_allclose(b.ends, [1, 3])
    out = tmp_path / "copy.jsonl"
    write_jsonl(out, [a, b])
    a2, b2 = load_jsonl(out)
    assert a2.labels.tolist() == a.labels.tolist() and a2.genres == a.genres
    np.testing.assert_allclose(b2.starts, b.starts)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"video": "a", "start": 0, "end": 1', "invalid JSON"),
        ('{"video": "a", "start": "0", "end": 1}', "'start' must be a number"),
        ('{"video": "a", "start": 2, "end": 1}', "start < end"),
        ('{"video": "a", "start": 1, "end": 2, "label": 2}', "'label'"),
        ('{"start": 1, "end": 2}', "'video'"),
        ('{"video": "b", "start": 0, "end": 2}', "consecutive"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, words):
    path = tmp_path / "bad.jsonl"
    good = ['{"video": "b", "start": 0, "end": 1}', '{"video": "a", "start": 0, "end": 1}']
    path.write_text("\n".join([*good, line]) + "\n")
    with pytest.raises(InputError) as info:
        load_jsonl(path)
    assert info.value.line == 3 and words in str(info.value)


def test_predictions_round_trip_and_gaps(tmp_path):
    path = tmp_path / "pred.jsonl"
    write_predictions(path, {"a": np.array([0.1, 0.9]), "b": np.array([0.5])})
    probs = read_predictions(path)
    assert probs["a"].tolist() == [0.1, 0.9] and probs["b"].tolist() == [0.5]
    path.write_text(
        '{"video": "a", "shot": 0, "prob": 0.2}\n{"video": "a", "shot": 2, "prob": 1}\n'
    )
    with pytest.raises(InputError, match="no prediction for shot 1"):
        read_predictions(path)
    path.write_text('{"video": "a", "shot": 0, "prob": 1.5}\n')
    with pytest.raises(InputError, match=r"pred.jsonl:1: 'prob'"):
        read_predictions(path)


def test_loaders_return_shot_sequences(tmp_path):
    root = _movienet(tmp_path, ["0000 0", "0001 1", "0002 0"])
    assert isinstance(load_movienet(root, "tt0000001"), ShotSequence)


def _store_with(tmp_path, counts, labels=None):
    from sseg.store.features import FeatureStore, FeatureStoreWriter

    rng = np.random.default_rng(0)
    with FeatureStoreWriter(tmp_path / "store") as writer:
        for i, n in enumerate(counts):
            ends = np.arange(1.0, n + 1)
            lab = None if labels is None else labels[i]
            writer.add(f"tt{i}", rng.normal(size=(n, 3, 4)), ends - 1, ends, [], lab)
    return FeatureStore(tmp_path / "store")


def test_load_labels_from_store_movienet_root_and_jsonl(tmp_path):
    from sseg.data.annotations import load_labels, select_videos

    store = _store_with(tmp_path, [4, 3], labels=[[0, 1, 0, 1], None])
    assert list(load_labels(None, store)) == ["tt0"]  # unlabelled video skipped
    root = tmp_path / "mn"
    (root / "label318").mkdir(parents=True)
    (root / "label318" / "tt0.txt").write_text("0000 1\n0001 0\n0002 1\n")
    (root / "label318" / "tt1.txt").write_text("0000 0\n")
    got = load_labels(root, store)
    assert got["tt0"].tolist() == [1, 0, 1, -100] and got["tt1"].tolist() == [0, -100, -100]
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [ShotSequence("tt1", [0, 1, 2], [1, 2, 3], labels=[1, 0, -100])])
    assert load_labels(shots, store)["tt1"].tolist() == [1, 0, -100]
    write_jsonl(shots, [ShotSequence("tt1", [0, 1], [1, 2], labels=[1, 0])])
    with pytest.raises(InputError, match="2 shots here but 3 in the store"):
        load_labels(shots, store)
    split = tmp_path / "split318.json"
    split.write_text(json.dumps({"train": ["tt1", "nope"], "test": ["tt0"]}))
    assert select_videos(store, split, "train") == ["tt1"]
    with pytest.raises(InputError, match="no subset 'dev'"):
        select_videos(store, split, "dev")
