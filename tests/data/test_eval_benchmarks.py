"""``sseg evaluate`` on benchmark files laid out as their public releases lay them out.

* MovieNet-SSeg: ``scene318/{label318,shot_movie318}/<imdb>.txt``, ``scene318/meta/split318.json``
* BBC Planet Earth: ``annotations/shots/<episode>.txt`` (tab-separated inclusive frames) and
  ``annotations/scenes/annotator_<k>/<episode>.txt`` (scene-start shots, ending with N)
* MovieChat-SSeg: a generic JSON-lines shot file beside MovieChat-1K's ``gt/<id>.json``
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseg.cli import main
from sseg.data.bbc import bbc_annotators, bbc_episodes, load_bbc_episode, read_annotator_file
from sseg.data.benchmark import open_benchmark
from sseg.data.moviechat import load_moviechat_sseg
from sseg.data.predictions import ShotPredictions, align_predictions, read_prediction_shots
from sseg.errors import InputError
from sseg.evaluation import metrics

# ---------------------------------------------------------------- MovieNet-SSeg


def _movienet_movie(rng, n_shots):
    lengths = rng.integers(20, 400, size=n_shots)  # frames
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    ends = starts + lengths - 1  # inclusive end frame
    labels = (rng.random(n_shots) < 0.3).astype(int)
    labels[-2] = 1  # every movie has a boundary
    return starts, ends, labels


@pytest.fixture(scope="module")
def movienet(tmp_path_factory):
    """``scene318/`` with two test movies and one train movie; returns (root, truth)."""
    root = tmp_path_factory.mktemp("movienet") / "scene318"
    for folder in ("label318", "shot_movie318", "meta"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(3)
    truth = {}
    for imdb, n in (("tt0000001", 14), ("tt0000002", 11), ("tt0000003", 9)):
        starts, ends, labels = _movienet_movie(rng, n)
        kf = [(s, (s + e) // 2, e) for s, e in zip(starts, ends, strict=True)]
        shot_lines = [f"{s} {e} {a} {b} {c}" for (s, e), (a, b, c) in zip(
            zip(starts, ends, strict=True), kf, strict=True)]  # fmt: skip
        (root / "shot_movie318" / f"{imdb}.txt").write_text("\n".join(shot_lines) + "\n")
        # N-1 lines, the last shot has none; one boundary written as -1 (kept as 1)
        label_lines = [f"{i:04d} {v}" for i, v in enumerate(labels[:-1])]
        first_one = int(np.flatnonzero(labels[:-1] == 1)[0])
        label_lines[first_one] = f"{first_one:04d} -1"
        (root / "label318" / f"{imdb}.txt").write_text("\n".join(label_lines) + "\n")
        full = np.r_[labels[:-1], metrics.UNKNOWN]
        truth[imdb] = (full, starts / 24.0, (ends + 1) / 24.0)
    split = {"train": ["tt0000003"], "val": [], "test": ["tt0000001", "tt0000002"]}
    (root / "meta" / "split318.json").write_text(json.dumps(split))
    (root / "meta" / "scene_movie318.json").write_text("{}")
    return root, truth


def _write_predictions(path, probs, per="shot", labels=None):
    with path.open("w") as handle:
        for vid, p in probs.items():
            shots = range(len(p)) if per == "shot" else np.flatnonzero(labels[vid] != -100)
            for i in shots:
                handle.write(json.dumps({"video": vid, "shot": int(i), "prob": float(p[i])}) + "\n")


def _all_row(out: str, name: str = "all") -> list[float]:
    row = [line for line in out.splitlines() if line.split()[:1] == [name]][0]
    return [float(x) for x in row.split()[1:]]


def test_movienet_root_without_features_bassl_prediction_layout(movienet, tmp_path, capsys):
    root, truth = movienet
    rng = np.random.default_rng(0)
    probs = {vid: rng.random(len(t[0])) for vid, t in truth.items()}
    labels = {vid: t[0] for vid, t in truth.items()}
    bassl, full = tmp_path / "bassl.jsonl", tmp_path / "full.jsonl"
    _write_predictions(bassl, probs, per="labelled", labels=labels)  # no line for the last shot
    _write_predictions(full, probs, per="shot")
    report = tmp_path / "r.json"
    args = ["evaluate", "--labels", str(root), "--split", str(root / "meta" / "split318.json")]
    assert main([*args, "--predictions", str(bassl), "--json", str(report)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["video", "AP(total)", "AP(avg)", "F1", "mIoU",
                                           "Recall", "Recall@3s"]  # fmt: skip
    assert "1 predicted video(s) have no labels here" in err  # the train movie, outside the split
    test_ids = ["tt0000001", "tt0000002"]
    expected = metrics.evaluate(
        {v: np.where(labels[v] == -100, 0.0, probs[v]) for v in test_ids},
        {v: labels[v] for v in test_ids},
        {v: truth[v][1:] for v in test_ids},
    )
    data = json.loads(report.read_text())
    assert data["benchmark"] == "movienet" and data["metrics"]["videos"] == 2
    for key in ("AP(total)", "AP(avg)", "F1", "Recall", "Recall@3s", "mIoU"):
        assert data["metrics"][key] == pytest.approx(expected[key]), key
    assert data["unscored"] == ["tt0000003"] and data["missing"] == []
    # one line per shot scores the same; the split may be given as the root folder
    assert main(["evaluate", "--labels", str(root), "--split", str(root),
                 "--predictions", str(full)]) == 0  # fmt: skip
    assert _all_row(capsys.readouterr().out) == _all_row(out)


def test_prediction_lines_must_cover_every_or_every_labelled_shot(movienet, tmp_path, capsys):
    root, truth = movienet
    preds = tmp_path / "p.jsonl"
    probs = {vid: np.full(len(t[0]), 0.3) for vid, t in truth.items()}
    probs["tt0000002"] = probs["tt0000002"][:-2]  # 9 lines for 11 shots, 10 labelled
    _write_predictions(preds, probs)
    assert main(["evaluate", "--labels", str(root), "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'tt0000002'" in err and str(preds) in err and "9 shot(s) (0..8)" in err
    assert "11 shots (0..10) of which 10 are labelled" in err


def test_align_predictions_rule():
    labels = np.array([0, -100, 1, 0, -100])
    every = ShotPredictions(np.arange(5), np.linspace(0.1, 0.5, 5))
    assert align_predictions(every, labels, "v", "p").tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5]
    )
    labelled = ShotPredictions(np.array([0, 2, 3]), np.array([0.7, 0.8, 0.9]))
    assert align_predictions(labelled, labels, "v", "p").tolist() == [0.7, 0.0, 0.8, 0.9, 0.0]
    for shots in ([0, 1, 2, 3], [0, 2], [0, 2, 3, 4, 5]):
        wrong = ShotPredictions(np.array(shots), np.zeros(len(shots)))
        with pytest.raises(InputError, match="video 'v': predictions for"):
            align_predictions(wrong, labels, "v", "p")


def test_split_file_found_in_meta_and_missing_test_videos_noted(movienet, tmp_path, capsys):
    root, truth = movienet
    bench = open_benchmark(root, root, "test")
    assert bench.kind == "movienet" and bench.video_ids == ["tt0000001", "tt0000002"]
    preds = tmp_path / "p.jsonl"
    _write_predictions(preds, {"tt0000001": np.full(14, 0.9)})
    assert main(["evaluate", "--labels", str(root), "--split", str(root),
                 "--predictions", str(preds)]) == 0  # fmt: skip
    assert "1 labelled video(s) have no predictions" in capsys.readouterr().err
    with pytest.raises(InputError, match="no split318.json"):
        open_benchmark(root, tmp_path, "test")


# ------------------------------------------------------------- BBC Planet Earth

EPISODES = {
    # inclusive frame ranges as in the release: gaps between shots, and shots that
    # share their boundary frame with the next one
    "01_From_Pole_to_Pole": [(0, 634), (718, 917), (918, 1132), (1133, 1286), (1287, 1580),
                             (1581, 1986), (1987, 2218), (2219, 2349), (2350, 2511),
                             (2512, 2683)],
    "02_Mountains": [(0, 120), (121, 300), (300, 512), (512, 700), (701, 950), (951, 1100),
                     (1101, 1300), (1301, 1500)],
}  # fmt: skip
ANNOTATORS = {
    "01_From_Pole_to_Pole": ["0,1,4,7,10", "0,2,4,8,10", "0,1,4,7,9,10", "0,4,10", "0,1,3,6,10"],
    "02_Mountains": ["0,2,5,8", "0,2,4,8", "0,3,5,8", "0,2,5,6,8", "0,1,5,8"],
}


@pytest.fixture(scope="module")
def bbc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bbc") / "BBC_Planet_Earth_Dataset"
    shots_dir = root / "annotations" / "shots"
    shots_dir.mkdir(parents=True)
    for episode, shots in EPISODES.items():
        (shots_dir / f"{episode}.txt").write_text("".join(f"{s}\t{e}\n" for s, e in shots))
        for k, text in enumerate(ANNOTATORS[episode]):
            folder = root / "annotations" / "scenes" / f"annotator_{k}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{episode}.txt").write_text(text)  # one line, no newline, ends with N
    return root


def _starts_to_labels(text, n):
    labels = np.zeros(n, int)
    for start in map(int, text.split(",")):
        if 0 < start < n:
            labels[start - 1] = 1
    labels[-1] = metrics.UNKNOWN
    return labels


def test_bbc_annotator_files_end_with_the_shot_count(bbc_root, tmp_path):
    assert bbc_episodes(bbc_root) == list(EPISODES)
    assert bbc_annotators(bbc_root / "annotations") == [f"annotator_{k}" for k in range(5)]
    episode = load_bbc_episode(bbc_root, "01_From_Pole_to_Pole")
    assert list(episode) == [f"annotator_{k}" for k in range(5)]
    assert episode["annotator_0"].labels.tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, -100]
    seq = episode["annotator_2"]
    assert seq.labels.tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 1, -100]
    assert seq.starts[1] == pytest.approx(718 / 25) and seq.ends[1] == pytest.approx(918 / 25)
    bad = tmp_path / "a.txt"
    bad.write_text("0,10,5")  # the end marker N may only close the list
    with pytest.raises(InputError, match=r"a.txt:1: .*end marker"):
        read_annotator_file(bad, 10)
    bad.write_text("0,3,11")
    with pytest.raises(InputError, match=r"outside 0..9"):
        read_annotator_file(bad, 10)
    bad.write_text("0,3\n")  # without the marker is fine too
    assert read_annotator_file(bad, 10).tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


def test_bbc_root_scores_every_annotator_and_their_mean(bbc_root, tmp_path, capsys):
    rng = np.random.default_rng(7)
    probs = {ep: rng.random(len(shots)) for ep, shots in EPISODES.items()}
    preds, report = tmp_path / "p.jsonl", tmp_path / "r.json"
    _write_predictions(preds, probs)
    args = ["evaluate", "--predictions", str(preds), "--labels", str(bbc_root)]
    assert main([*args, "--json", str(report), "--per-video"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert names[-6:] == [f"annotator_{k}" for k in range(5)] + ["mean"]
    assert "annotator_3/02_Mountains" in names
    data = json.loads(report.read_text())
    assert data["benchmark"] == "bbc" and set(data["annotators"]) == {
        f"annotator_{k}" for k in range(5)
    }
    per_pair_ap = []
    for k in range(5):
        labels = {ep: _starts_to_labels(ANNOTATORS[ep][k], len(s)) for ep, s in EPISODES.items()}
        times = {ep: (np.array(s)[:, 0] / 25, (np.array(s)[:, 1] + 1) / 25)
                 for ep, s in EPISODES.items()}  # fmt: skip
        direct = metrics.evaluate(probs, labels, times)
        got = data["annotators"][f"annotator_{k}"]
        for key in ("AP(total)", "AP(avg)", "F1", "Recall", "mIoU"):
            assert got[key] == pytest.approx(direct[key]), (k, key)
        per_pair_ap += [metrics.average_precision(probs[ep], labels[ep]) for ep in EPISODES]
    # AP(avg) on BBC: mean of per-episode AP over every (episode, annotator) pair
    assert data["metrics"]["AP(avg)"] == pytest.approx(np.mean(per_pair_ap))
    assert _all_row(out, "mean")[1] == pytest.approx(100 * np.mean(per_pair_ap), abs=0.006)


# ---------------------------------------------------------------- MovieChat-SSeg


@pytest.fixture
def moviechat(tmp_path):
    """MovieChat-1K-test/gt/<id>.json (release layout) and a MovieChat-SSeg JSON-lines file."""
    gt = tmp_path / "MovieChat-1K-test" / "gt"
    gt.mkdir(parents=True)
    clips = {"1": (24, 480), "2": (30, 300)}  # fps, num_frame -> 20 s and 10 s
    for clip, (fps, frames) in clips.items():
        info = {"video_path": f"{clip}.mp4", "url": "", "class": "movie", "w": 640, "h": 360,
                "fps": fps, "num_frame": frames}  # fmt: skip
        ann = {"caption": "a clip", "info": info,
               "global": [{"question": "q", "answer": "a"}],
               "breakpoint": [{"time": 10, "question": "q", "answer": "a"}]}  # fmt: skip
        (gt / f"{clip}.json").write_text(json.dumps(ann))
    shots = tmp_path / "moviechat_sseg.jsonl"
    lines = []
    for clip, bounds, labels in (("1", [0, 4, 8, 13, 20], [0, 1, 0, -100]),
                                 ("2", [0, 2, 5, 7, 10], [1, 0, 1, -100])):  # fmt: skip
        for i, label in enumerate(labels):
            lines.append({"video": clip, "start": bounds[i], "end": bounds[i + 1], "label": label})
    shots.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return shots, gt


def test_moviechat_sseg_loader_checks_clips(moviechat, tmp_path):
    shots, gt = moviechat
    seqs = {s.video_id: s for s in load_moviechat_sseg(shots, gt)}
    assert seqs["1"].fps == 24 and seqs["2"].fps == 30
    assert seqs["2"].labels.tolist() == [1, 0, 1, -100]
    longer = tmp_path / "long.jsonl"
    longer.write_text(shots.read_text().replace('"end": 10,', '"end": 12,'))
    with pytest.raises(InputError, match=r"clip '2': last shot ends at 12.000 s, after the "
                                         r"clip's 10.000 s"):  # fmt: skip
        load_moviechat_sseg(longer, gt)
    (gt / "2.json").unlink()
    with pytest.raises(InputError, match="clip '2' is not in MovieChat-1K"):
        load_moviechat_sseg(shots, gt)


def test_moviechat_sseg_evaluate_reports_ap_total(moviechat, tmp_path, capsys):
    shots, gt = moviechat
    preds, report = tmp_path / "p.jsonl", tmp_path / "r.json"
    probs = {"1": [0.2, 0.9, 0.6], "2": [0.7, 0.1, 0.4]}  # per labelled shot
    preds.write_text("".join(json.dumps({"video": v, "shot": i, "prob": p}) + "\n"
                             for v, ps in probs.items() for i, p in enumerate(ps)))  # fmt: skip
    args = ["evaluate", "--predictions", str(preds), "--labels", str(shots)]
    assert main([*args, "--clip-info", str(gt), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    pooled = metrics.average_precision([0.2, 0.9, 0.6, 0.7, 0.1, 0.4], [0, 1, 0, 1, 0, 1])
    assert data["metrics"]["AP(total)"] == pytest.approx(pooled)
    per_clip = [metrics.average_precision([0.2, 0.9, 0.6], [0, 1, 0]),
                metrics.average_precision([0.7, 0.1, 0.4], [1, 0, 1])]  # fmt: skip
    assert data["metrics"]["AP(avg)"] == pytest.approx(np.mean(per_clip))
    assert data["metrics"]["AP(total)"] != pytest.approx(data["metrics"]["AP(avg)"])
    assert _all_row(capsys.readouterr().out)[:2] == pytest.approx(
        [100 * pooled, 100 * np.mean(per_clip)], abs=0.006
    )
    assert main([*args, "--clip-info", str(tmp_path / "nope")]) == 2
    assert "MovieChat-1K annotation folder not found" in capsys.readouterr().err


# ------------------------------------------------------------------- protocol


def _bassl_reference(probs, labels):
    """BaSSL's decisions: F1 from ``prob >= 0.5``, the rest from argmax([1 - p, p])."""
    known = labels != metrics.UNKNOWN
    argmax = np.argmax(np.stack([1 - probs, probs], axis=1), axis=1)  # ties -> 0
    f1_pred = probs >= 0.5
    gt = labels == 1
    tp = (f1_pred & gt & known).sum()
    f1 = 2 * tp / (2 * tp + (f1_pred & ~gt & known).sum() + (~f1_pred & gt & known).sum())
    recall = (argmax.astype(bool) & gt & known).sum() / (gt & known).sum()
    return f1, recall, argmax


@pytest.mark.parametrize("seed", range(5))
def test_bassl_protocol_matches_argmax_and_torchmetrics_f1_on_ties(seed):
    rng = np.random.default_rng(seed)
    n = 40
    probs = rng.choice([0.1, 0.5, 0.5, 0.7, 0.3], size=n)  # many exact 0.5 ties
    labels = (rng.random(n) < 0.4).astype(int)
    labels[[0, -1]] = [1, metrics.UNKNOWN]
    starts = np.arange(n, dtype=float)
    times = {"v": (starts, starts + 1)}
    out = metrics.evaluate({"v": probs}, {"v": labels}, times)  # protocol "bassl"
    f1, recall, argmax = _bassl_reference(probs, labels)
    assert out["protocol"] == "bassl"
    assert out["F1"] == pytest.approx(f1) and out["Recall"] == pytest.approx(recall)
    as_argmax = {"v": argmax.astype(float)}  # 0/1 decisions: every rule agrees on them
    hard = metrics.evaluate(as_argmax, {"v": labels}, times, protocol="inclusive")
    assert out["mIoU"] == pytest.approx(hard["mIoU"])
    assert out["Recall@3s"] == pytest.approx(hard["Recall@3s"])
    inclusive = metrics.evaluate({"v": probs}, {"v": labels}, times, protocol="inclusive")
    assert inclusive["F1"] == out["F1"]
    assert inclusive["Recall"] == pytest.approx(((probs >= 0.5) & (labels == 1)).sum()
                                                / (labels == 1).sum())  # fmt: skip


def test_half_probability_is_a_boundary_for_f1_only(tmp_path, capsys):
    labels = {"v": np.array([1, 0, 1, -100])}
    probs = {"v": np.array([0.5, 0.2, 0.9, 0.0])}
    times = {"v": (np.arange(4.0), np.arange(1.0, 5))}
    bassl = metrics.evaluate(probs, labels, times)
    assert bassl["F1"] == 1.0 and bassl["Recall"] == 0.5  # 0.5 ties go to "no boundary"
    inclusive = metrics.evaluate(probs, labels, times, protocol="inclusive")
    assert inclusive["F1"] == 1.0 and inclusive["Recall"] == 1.0
    with pytest.raises(ValueError, match="protocol"):
        metrics.evaluate(probs, labels, times, protocol="argmax")
    # the command line: bassl by default, inclusive on request
    shots = tmp_path / "shots.jsonl"
    shots.write_text("".join(
        json.dumps({"video": "v", "start": i, "end": i + 1, "label": int(lab)}) + "\n"
        for i, lab in enumerate(labels["v"])))  # fmt: skip
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"video": "v", "shot": i, "prob": p}) + "\n"
                             for i, p in enumerate([0.5, 0.2, 0.9])))  # fmt: skip
    args = ["evaluate", "--predictions", str(preds), "--labels", str(shots)]
    assert main(args) == 0
    assert _all_row(capsys.readouterr().out)[4] == 50.0  # Recall column
    assert main([*args, "--protocol", "inclusive"]) == 0
    assert _all_row(capsys.readouterr().out)[4] == 100.0


def test_prediction_reader_keeps_shot_indices(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"video": "a", "shot": 2, "prob": 0.4}\n{"video": "a", "shot": 0, "prob": 1}')
    got = read_prediction_shots(path)["a"]
    assert got.shots.tolist() == [0, 2] and got.probs.tolist() == [1.0, 0.4]
    assert got.describe() == "2 shot(s) (0..2 with gaps)"


def test_bbc_root_with_a_feature_store(bbc_root, tmp_path, capsys):
    from sseg.data.annotations import load_labels
    from sseg.store.features import FeatureStore, FeatureStoreWriter

    rng = np.random.default_rng(1)
    with FeatureStoreWriter(tmp_path / "store") as writer:
        for episode, shots in EPISODES.items():
            frames = np.array(shots)
            writer.add(episode, rng.normal(size=(len(shots), 3, 4)), frames[:, 0] / 25,
                       (frames[:, 1] + 1) / 25, [], None)  # fmt: skip
    store = FeatureStore(tmp_path / "store")
    probs = {ep: rng.random(len(shots)) for ep, shots in EPISODES.items()}
    preds, with_store, without = tmp_path / "p.jsonl", tmp_path / "a.json", tmp_path / "b.json"
    _write_predictions(preds, probs)
    args = ["evaluate", "--predictions", str(preds), "--labels", str(bbc_root)]
    assert main([*args, "--features", str(store.root), "--json", str(with_store)]) == 0
    assert main([*args, "--json", str(without)]) == 0
    capsys.readouterr()
    a, b = (json.loads(p.read_text())["metrics"] for p in (with_store, without))
    for key in ("AP(total)", "AP(avg)", "F1", "Recall", "Recall@3s", "mIoU"):
        assert a[key] == pytest.approx(b[key]), key
    # training and ablation take one ground truth: a BBC root is refused there
    with pytest.raises(InputError, match="one ground truth per annotator"):
        load_labels(bbc_root, store)
    # the annotation's shot count must equal the store's
    shorter = tmp_path / "short" / "annotations"
    (shorter / "shots").mkdir(parents=True)
    (shorter / "scenes" / "annotator_0").mkdir(parents=True)
    (shorter / "shots" / "02_Mountains.txt").write_text("0\t10\n11\t20\n21\t30\n")
    (shorter / "scenes" / "annotator_0" / "02_Mountains.txt").write_text("0,1,3")
    assert main(["evaluate", "--predictions", str(preds), "--labels", str(shorter.parent),
                 "--features", str(store.root)]) == 2  # fmt: skip
    assert "has 3 shots here but 8 in the store" in capsys.readouterr().err


def test_unrecognised_annotation_folder_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"video": "a", "shot": 0, "prob": 0.5}\n')
    assert main(["evaluate", "--predictions", str(preds), "--labels", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "label318/ + shot_movie318/" in err
