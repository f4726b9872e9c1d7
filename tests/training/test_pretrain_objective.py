"""Pre-training objective, runner, config file and CLI on a small synthetic corpus."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sseg.cli import main
from sseg.errors import InputError
from sseg.modeling.model import SceneModel
from sseg.training.pretrain import (
    WindowBatcher,
    balanced_bce,
    build_objective,
    load_genre_bank,
    run_pretraining,
    segment_ids,
)
from sseg.training.pretrain_config import PretrainConfig, load_config

DIM = 32
# One intra-op thread: tiny models run faster and steadier on a busy 2-core box.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store_dir(make_synthetic_store):
    return make_synthetic_store(12, shots=(30, 90), dim=DIM, seed=0).root


def _cfg(store_dir, out_dir, **kw) -> PretrainConfig:
    base = dict(
        store=str(store_dir), out_dir=str(out_dir), hidden=32, heads=2, layers=1, proj_dim=16,
        batch_size=8, steps=10, warmup_steps=2, lr=2e-3, checkpoint_every=4, device="cpu",
    )  # fmt: skip
    base.update(kw)
    return PretrainConfig(**base)


def test_segment_ids_and_balanced_bce():
    ids = segment_ids(torch.tensor([[1, 4]]), 7)
    assert ids.tolist() == [[0, 0, 1, 1, 1, 2, 2]]
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = 0.5 * bce[0, 0] + 0.5 * (bce[0, 1] + bce[0, 2]) / 2
    torch.testing.assert_close(balanced_bce(logits, target, mask), expected)


@pytest.mark.parametrize("sampling, dtw", [("idw", "mean"), ("side", "sum"), ("dw", "mean")])
def test_objective_forward_backward(store_dir, tmp_path, sampling, dtw):
    from sseg.ops.pseudo_boundary import pseudo_boundaries
    from sseg.store.features import FeatureStore

    cfg = _cfg(store_dir, tmp_path, sampling=sampling, dtw_mode=dtw, anchors=3)
    store = FeatureStore(store_dir)
    genres, source = load_genre_bank(None, store)
    assert source.endswith("genre_bank.npy")
    objective = build_objective(cfg, store, genres)
    videos = [store.load(v) for v in store.video_ids]
    videos[0].keyframes = videos[0].keyframes[:9]  # a window shorter than 17: padded
    videos[0].starts, videos[0].ends = videos[0].starts[:9], videos[0].ends[:9]
    batcher = WindowBatcher(videos, 17, 3, sampling, 16, seed=1)
    batch = batcher(0, 0)
    assert batch.keyframes.shape == (16, 17, 3, DIM) and batch.anchors.shape == (16, 3)
    assert (batch.anchors < batch.lengths[:, None]).all()
    with torch.no_grad():
        shots = objective.scene.shot_features(batch.keyframes) * batch.valid[..., None]
        bounds, _ = pseudo_boundaries(shots, batch.anchors, batch.lengths, dtw)
    assert ((bounds >= batch.anchors[:, :-1]) & (bounds < batch.anchors[:, 1:])).all()
    # gradients reach every trainable part
    with torch.no_grad():  # W starts at zero: give it a value so its gradient is informative
        objective.scene.genre_residual.weight.normal_(std=0.01)
    loss, metrics = objective(batch)
    assert torch.isfinite(loss) and {"l_con", "l_pb", "con_acc"} <= set(metrics)
    assert metrics["l_con"] > 0 and metrics["l_pb"] > 0
    loss.backward()
    for name in ("scene.genre_residual.weight", "scene.boundary.encoder.input_proj.weight",
                 "scene.boundary.head.mlp.0.weight", "con_head.2.weight"):  # fmt: skip
        grad = dict(objective.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_pretraining_loss_falls_and_model_loads_for_finetuning(store_dir, tmp_path):
    cfg = _cfg(
        store_dir, tmp_path / "out", steps=150, batch_size=16, checkpoint_every=0, dropout=0.0
    )
    summary = run_pretraining(cfg, progress=False)
    history = summary["history"]
    assert len(history) == 150 and all(math.isfinite(x) for x in history)
    assert np.mean(history[-20:]) < 0.85 * np.mean(history[:20])
    model = SceneModel.load(tmp_path / "out" / "model.safetensors")
    trained = summary["objective"].scene.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, trained[name]), name
    assert model.meta["pretrained"]["sampling"] == "idw"
    assert model.genre_residual.weight.abs().sum() > 0  # W was trained
    keyframes = torch.randn(25, 3, DIM)
    probs = model.predict(keyframes)
    assert probs.shape == (25,) and ((probs >= 0) & (probs <= 1)).all()
    report = json.loads((tmp_path / "out" / "pretrain_summary.json").read_text())
    assert report["steps"] == 150 and report["videos"] == 12
    assert (tmp_path / "out" / "train_state.safetensors").is_file()  # saved at the end


def test_killed_run_resumes_to_the_same_loss_curve(store_dir, tmp_path, monkeypatch):
    import sseg.training.loop as training

    straight = run_pretraining(_cfg(store_dir, tmp_path / "a"), progress=False)["history"]

    real_step = training.Trainer.train_step

    def dying_step(self, step):
        if step == 6:
            raise KeyboardInterrupt  # killed after the step-4 checkpoint
        return real_step(self, step)

    monkeypatch.setattr(training.Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_pretraining(_cfg(store_dir, tmp_path / "b"), progress=False)
    monkeypatch.undo()
    with pytest.raises(InputError, match="--resume"):
        run_pretraining(_cfg(store_dir, tmp_path / "b"), progress=False)
    resumed = run_pretraining(_cfg(store_dir, tmp_path / "b"), resume=True, progress=False)
    assert resumed["history"] == straight
    a = SceneModel.load(tmp_path / "a" / "model.safetensors").state_dict()
    b = SceneModel.load(tmp_path / "b" / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _write(path, text):
    path.write_text(text)
    return path


def test_config_file_validation(tmp_path):
    ok = _write(tmp_path / "c.toml", 'store = "feat"\nout_dir = "run"\nanchors = 4\nlr = 1\n')
    cfg = load_config(ok)
    assert cfg.store == str(tmp_path / "feat") and cfg.anchors == 4 and cfg.lr == 1.0
    assert load_config(ok, {"steps": 5}).steps == 5
    bad = {
        '{"store": "s", "out_dir": "o", "windw": 17}': "unknown key 'windw'",
        '{"store": "s"}': "missing required key 'out_dir'",
        '{"store": "s", "out_dir": "o", "window": "17"}': "key 'window' must be int",
        '{"store": "s", "out_dir": "o", "window": 16}': "odd integer",
        '{"store": "s", "out_dir": "o", "sampling": "short"}': "key 'sampling' must be one of",
        '{"store": "s", "out_dir": "o", "anchors": 1}': "key 'anchors'",
        '{"store": "s", "out_dir": "o", "lr": -1}': "key 'lr' must be > 0",
        '{"store": "s", "out_dir": "o", "gather_negatives": 1}': "must be bool",
        '{"store": "s", "out_dir": "o", "hidden": 30, "heads": 8}': "divisible",
        '{"store": "s",\n "out_dir": }': "invalid JSON",
    }
    for text, match in bad.items():
        path = _write(tmp_path / "bad.json", text)
        with pytest.raises(InputError, match=match) as info:
            load_config(path)
        assert info.value.path == str(path)
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(_write(tmp_path / "b.toml", "store = \n"))
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.json")


def test_pretrain_command(store_dir, tmp_path, capsys):
    cfg = _write(
        tmp_path / "cfg.json",
        json.dumps({
            "store": str(store_dir), "out_dir": "run", "hidden": 32, "heads": 2, "layers": 1,
            "batch_size": 4, "steps": 3, "warmup_steps": 1, "checkpoint_every": 2,
            "device": "cpu",
        }),
    )  # fmt: skip
    assert main(["pretrain", "--config", str(cfg), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 3 and (tmp_path / "run" / "model.safetensors").is_file()
    assert main(["pretrain", "--config", str(cfg), "--quiet"]) == 2  # would clobber the run
    assert "--resume" in capsys.readouterr().err
    assert main(["pretrain", "--config", str(cfg), "--quiet", "--resume", "--steps", "5"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 5
    bad = _write(tmp_path / "bad.json", '{"store": "nowhere", "out_dir": "o", "device": "cpu"}')
    assert main(["pretrain", "--config", str(bad), "--quiet"]) == 2
    assert "feature store not found" in capsys.readouterr().err


def test_pretrained_checkpoint_initialises_finetuning(store_dir, tmp_path, capsys):
    """The saved pre-trained SceneModel is accepted as-is by ``sseg finetune --init``."""
    run_pretraining(_cfg(store_dir, tmp_path / "pre", steps=4, checkpoint_every=0), False, False)
    pre = SceneModel.load(tmp_path / "pre" / "model.safetensors")
    args = ["finetune", "--features", str(store_dir), "--out", str(tmp_path / "ft"),
            "--init", str(tmp_path / "pre" / "model.safetensors"), "--steps", "3",
            "--batch-size", "8", "--no-progress"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    tuned = SceneModel.load(tmp_path / "ft" / "model.safetensors")
    assert tuned.boundary.config == pre.boundary.config
    torch.testing.assert_close(tuned.genre_residual.weight, pre.genre_residual.weight)
    assert not torch.equal(
        tuned.boundary.head.mlp[0].weight, pre.boundary.head.mlp[0].weight
    )  # the head trained on top of the pre-trained one


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_pretraining_on_gpu(store_dir, tmp_path, amp):
    cfg = _cfg(store_dir, tmp_path / amp, steps=20, device="cuda", amp=amp, batch_size=16)
    history = run_pretraining(cfg, progress=False)["history"]
    assert all(math.isfinite(x) for x in history)
    assert np.mean(history[-5:]) < np.mean(history[:5])
