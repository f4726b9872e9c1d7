"""``sseg finetune``, ``sseg evaluate`` and ``sseg ablate`` end to end on a tiny store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sseg.cli import main
from sseg.data.jsonl import write_jsonl
from sseg.data.predictions import read_predictions
from sseg.evaluation import metrics
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.store.features import FeatureStore, FeatureStoreWriter

DIM = 32
NAMES = ("AP(total)", "AP(avg)", "F1", "mIoU", "Recall", "Recall@3s")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(make_synthetic_store) -> FeatureStore:
    return make_synthetic_store(8, shots=(30, 50), dim=DIM, seed=5)


@pytest.fixture(scope="module")
def model_path(store, tmp_path_factory):
    torch.manual_seed(1)
    bank = torch.from_numpy(np.load(store.root / "genre_bank.npy"))
    cfg = ContextConfig(input_dim=DIM, hidden=32, heads=2, layers=1, window=5, dropout=0.0)
    path = tmp_path_factory.mktemp("model") / "init.safetensors"
    SceneModel(bank, cfg).save(path)
    return path


def _metrics_line(out: str) -> list[float]:
    row = [line for line in out.splitlines() if line.startswith("all")][0]
    return [float(x) for x in row.split()[1:]]


def test_finetune_command_init_resume_and_fresh(store, model_path, tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["finetune", "--features", str(store.root), "--out", str(out), "--no-progress"]
    common += ["--batch-size", "8", "--warmup", "2", "--checkpoint-every", "2"]
    assert main([*common, "--init", str(model_path), "--steps", "4"]) == 0
    first = SceneModel.load(out / "model.safetensors")
    assert first.meta["finetune"]["steps"] == 4
    assert main([*common, "--init", str(model_path), "--steps", "6", "--resume"]) == 0
    assert SceneModel.load(out / "model.safetensors").meta["finetune"]["steps"] == 6
    assert "labelled shots" in capsys.readouterr().out
    # a new model on the store's own genre bank, small config
    fresh = tmp_path / "fresh"
    args = ["finetune", "--features", str(store.root), "--out", str(fresh), "--no-progress"]
    args += ["--steps", "2", "--batch-size", "4", "--hidden", "16", "--heads", "2"]
    args += ["--layers", "1", "--window", "3", "--pos-weight", "auto"]
    assert main(args) == 0
    assert SceneModel.load(fresh / "model.safetensors").boundary.config.hidden == 16


def test_finetune_without_genre_bank_is_a_clear_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    with FeatureStoreWriter(tmp_path / "plain") as writer:
        feats = rng.normal(size=(5, 3, DIM))
        writer.add("v", feats, np.arange(5.0), np.arange(1.0, 6), [], [0, 1, 0, 1, 0])
    args = ["finetune", "--features", str(tmp_path / "plain"), "--out", str(tmp_path / "o")]
    assert main([*args, "--steps", "1"]) == 2
    assert "genre bank" in capsys.readouterr().err


def test_evaluate_model_predictions_and_jsonl_agree(store, model_path, tmp_path, capsys):
    report, preds = tmp_path / "r.json", tmp_path / "p.jsonl"
    args = ["evaluate", "--model", str(model_path), "--features", str(store.root)]
    assert (
        main([*args, "--json", str(report), "--per-video", "--save-predictions", str(preds)]) == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["video", *NAMES]
    assert sum(line.startswith("syn") for line in out.splitlines()) == len(store)
    data = json.loads(report.read_text())
    assert data["tau"] == 10.0 and data["split_n"] == 3 and data["shots_split"] > 0
    # recompute from the saved predictions with the metrics module directly
    probs = read_predictions(preds)
    videos = {v: store.load(v) for v in store.video_ids}
    labels = {v: f.labels for v, f in videos.items()}
    direct = metrics.evaluate(probs, labels, {v: (f.starts, f.ends) for v, f in videos.items()})
    for name in NAMES:
        assert data["metrics"][name] == pytest.approx(direct[name])
    table = _metrics_line(out)
    assert table == pytest.approx([round(100 * direct[n], 2) for n in NAMES], abs=0.006)
    # external predictions against the store, and against a JSON-lines annotation
    assert main(["evaluate", "--predictions", str(preds), "--features", str(store.root)]) == 0
    assert _metrics_line(capsys.readouterr().out) == table
    # a predicted video the annotation lacks is reported, not silently dropped
    with preds.open("a") as handle:
        handle.write('{"video": "elsewhere", "shot": 0, "prob": 0.5}\n')
    assert main(["evaluate", "--predictions", str(preds), "--features", str(store.root)]) == 0
    captured = capsys.readouterr()
    assert _metrics_line(captured.out) == table and "1 predicted video" in captured.err
    shots = tmp_path / "shots.jsonl"
    write_jsonl(shots, [f.to_shot_sequence() for f in videos.values()])
    assert main(["evaluate", "--predictions", str(preds), "--labels", str(shots)]) == 0
    assert _metrics_line(capsys.readouterr().out) == table


def test_evaluate_split_subset_and_no_split(store, model_path, tmp_path, capsys):
    split = tmp_path / "split318.json"
    ids = store.video_ids
    split.write_text(json.dumps({"train": ids[:5], "val": [], "test": ids[5:] + ["missing"]}))
    report = tmp_path / "r.json"
    args = ["evaluate", "--model", str(model_path), "--features", str(store.root)]
    assert main([*args, "--split", str(split), "--no-split", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["metrics"]["videos"] == 3 and data["tau"] is None and data["shots_split"] == 0
    capsys.readouterr()


def test_ablate_over_tau(store, model_path, tmp_path, capsys):
    report = tmp_path / "ablate.json"
    args = ["ablate", "--model", str(model_path), "--features", str(store.root)]
    assert main([*args, "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["none", "60", "30", "10"]
    results = json.loads(report.read_text())["results"]
    assert [r["tau"] for r in results] == [None, 60.0, 30.0, 10.0]
    split_counts = [r["shots_split"] for r in results]
    assert split_counts[0] == 0 and split_counts == sorted(split_counts) and split_counts[-1] > 0
    # the tau=none row equals a plain evaluation without splitting
    single = tmp_path / "single.json"
    ev = ["evaluate", "--model", str(model_path), "--features", str(store.root), "--no-split"]
    assert main([*ev, "--json", str(single)]) == 0
    plain = json.loads(single.read_text())["metrics"]
    for name in NAMES:
        assert results[0][name] == pytest.approx(plain[name])


def test_bad_inputs_exit_2_with_file_and_line(store, model_path, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"video": "syn0000", "shot": 0, "prob": 0.5}\n{"video": 1, "shot": 1,\n')
    assert main(["evaluate", "--predictions", str(preds), "--features", str(store.root)]) == 2
    assert f"{preds}:2" in capsys.readouterr().err
    preds.write_text('{"video": "syn0000", "shot": 0, "prob": 0.5}\n')
    assert main(["evaluate", "--predictions", str(preds), "--features", str(store.root)]) == 2
    assert "'syn0000': predictions for 1 shot(s) (0..0)" in capsys.readouterr().err
    args = ["ablate", "--model", str(model_path), "--features", str(store.root), "--split-n", "0"]
    assert main(args) == 2
    with pytest.raises(SystemExit):
        main(["ablate", "--model", str(model_path), "--taus", "none,-3"])


def test_model_and_store_dimensions_must_match(store, tmp_path, capsys):
    other = tmp_path / "other.safetensors"
    SceneModel(torch.randn(4, 16), ContextConfig(input_dim=16, hidden=16, heads=2, layers=1,
               window=3)).save(other)  # fmt: skip
    assert main(["evaluate", "--model", str(other), "--features", str(store.root)]) == 2
    assert "32-d but the model takes 16-d" in capsys.readouterr().err
