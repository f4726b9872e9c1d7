"""Fine-tuning on the synthetic corpus: it learns, and resume is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sseg.data.annotations import load_labels
from sseg.evaluation.scoring import predict_store, score
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.training.finetune import MODEL_FILE, FinetuneConfig, LabelledShots, finetune
from sseg.training.loop import TrainConfig

DIM = 32
# Tiny models on a shared 2-core machine train far faster on one thread.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(make_synthetic_store):
    return make_synthetic_store(48, shots=(40, 80), dim=DIM, seed=3)


def small_model(store, seed: int = 0) -> SceneModel:
    """A small SceneModel on the store's genre bank (default unit-scale positions)."""
    torch.manual_seed(seed)
    bank = torch.from_numpy(np.load(store.root / "genre_bank.npy"))
    cfg = ContextConfig(input_dim=DIM, hidden=64, heads=4, layers=1, window=9, dropout=0.0)
    return SceneModel(bank, cfg)


def _ap(model, store, videos):
    labels = load_labels(None, store, videos)
    probs, _ = predict_store(model, store, videos, tau=None)
    return score(probs, labels, store)["AP"]


def test_finetuning_improves_ap_on_held_out_videos(store):
    videos = store.video_ids
    train_ids, test_ids = videos[:-8], videos[-8:]
    model = small_model(store)
    before = _ap(model, store, test_ids)
    genre_before = model.genre_residual.weight.detach().clone()
    data = LabelledShots.from_store(store, load_labels(None, store, train_ids), train_ids)
    cfg = TrainConfig(
        steps=400, lr=1e-3, warmup_steps=20, batch_size=32, progress=False, checkpoint_every=0
    )
    _, history = finetune(model, data, cfg, FinetuneConfig(pos_weight="auto"))
    after = _ap(model, store, test_ids)
    assert after > before + 0.25, (before, after)
    assert np.mean(history[-50:]) < np.mean(history[:50])
    # the AG-Residual layer stays frozen by default
    assert torch.equal(model.genre_residual.weight, genre_before)


def test_train_genre_option_updates_the_residual(store):
    model = small_model(store)
    ids = store.video_ids[:4]
    data = LabelledShots.from_store(store, load_labels(None, store, ids), ids)
    cfg = TrainConfig(steps=3, lr=1e-3, warmup_steps=0, batch_size=8, progress=False)
    cfg.checkpoint_every = 0
    finetune(model, data, cfg, FinetuneConfig(train_genre=True))
    assert model.genre_residual.weight.abs().sum() > 0


def test_labelled_shots_skip_unknown_and_pad_windows(store):
    vid = store.video_ids[0]
    labels = store.load(vid).labels.copy()
    labels[:3] = -100
    data = LabelledShots.from_store(store, {vid: labels}, [vid])
    assert len(data.positions) == len(labels) - 3 and data.positions[0].tolist() == [0, 3]
    windows, valid, targets = data.windows(np.array([0, len(data.positions) - 1]), 9)
    assert windows.shape == (2, 9, 3, DIM)
    # shot 3: window covers shots -1..7 -> first position padded
    assert valid[0].tolist() == [False] + [True] * 8
    assert torch.equal(windows[0, 0], torch.zeros(3, DIM))
    kf = np.asarray(store.load(vid).keyframes, dtype=np.float32)
    np.testing.assert_allclose(windows[0, 4].numpy(), kf[3])
    # last shot: 4 padded positions after it
    assert valid[1].tolist() == [True] * 5 + [False] * 4
    assert targets.tolist() == [float(labels[3]), float(labels[-1])]


def test_resume_reproduces_an_uninterrupted_run(store, tmp_path):
    ids = store.video_ids[:6]
    data = LabelledShots.from_store(store, load_labels(None, store, ids), ids)

    def cfg():
        return TrainConfig(
            steps=12, lr=1e-3, warmup_steps=2, batch_size=8, progress=False, checkpoint_every=4
        )

    full, _ = finetune(small_model(store), data, cfg(), out_dir=tmp_path / "full")
    part = tmp_path / "part"
    finetune(small_model(store), data, cfg(), out_dir=part, stop_at=6)
    # a fresh process would rebuild the same initial model and resume from the state file
    resumed, _ = finetune(small_model(store), data, cfg(), out_dir=part, resume=True)
    for (name, a), (_, b) in zip(
        full.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    loaded = SceneModel.load(part / MODEL_FILE)
    assert loaded.meta["finetune"]["steps"] == 12
