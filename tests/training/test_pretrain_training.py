"""Trainer pieces: schedule, LARS, train-state round trip and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sseg.errors import InputError
from sseg.training.loop import (
    LARS,
    TrainConfig,
    Trainer,
    build_optimizer,
    cosine_lr,
    load_train_state,
    save_train_state,
    step_rng,
)


def test_cosine_lr_warmup_and_decay():
    lrs = [cosine_lr(s, 100, 10, 1.0, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10], strict=True))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert cosine_lr(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(55, 100, 10, 1.0) == pytest.approx(0.5)


def test_lars_first_step_uses_trust_ratio():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # |w| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS([w, b], lr=0.5, momentum=0.9, weight_decay=0.0, eta=0.01)
    w.grad = torch.tensor([[10.0, 0.0]])
    b.grad = torch.tensor([2.0])
    opt.step()
    # 2-D: update = lr * eta * |w| / |g| * g = 0.5 * 0.01 * 5 / 10 * [10, 0]
    torch.testing.assert_close(w.detach(), torch.tensor([[3.0 - 0.025, 4.0]]))
    # 1-D is excluded from adaptation: plain SGD step
    torch.testing.assert_close(b.detach(), torch.tensor([0.0]))


def test_lars_minimises_a_quadratic():
    torch.manual_seed(0)
    target = torch.randn(8, 8)
    w = nn.Parameter(torch.randn(8, 8))
    opt = build_optimizer([w], "lars", lr=5.0, weight_decay=0.0)
    first = None
    for _ in range(200):
        loss = ((w - target) ** 2).sum()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, batch):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        return loss, {"mse": loss.item()}


def _batch(step: int, rank: int):
    rng = step_rng(7, step, rank)
    x = torch.from_numpy(rng.normal(size=(8, 6))).float()
    return x, x.sum(-1).sin()


def _trainer(out, steps: int, optimizer: str = "adamw") -> Trainer:
    torch.manual_seed(123)
    cfg = TrainConfig(
        steps=steps,
        lr=3e-3,
        warmup_steps=3,
        optimizer=optimizer,
        seed=7,
        batch_size=8,
        checkpoint_every=5,
        progress=False,
        clip_grad=0.5,
    )
    return Trainer(_Tiny(), lambda m, b: m(b), _batch, cfg, out_dir=out)


@pytest.mark.parametrize("optimizer", ["adamw", "lars"])
def test_resume_reproduces_the_loss_curve_exactly(tmp_path, optimizer):
    straight = _trainer(tmp_path / "a", 20, optimizer)
    full = straight.fit()
    assert len(full) == 20 and full[-1] < full[0]

    first = _trainer(tmp_path / "b", 20, optimizer)
    first.fit(stop_at=10)  # stop half way, as if killed after the step-10 checkpoint
    resumed = _trainer(tmp_path / "b", 20, optimizer)
    assert resumed.resume() == 10
    curve = resumed.fit()
    assert curve == full  # bit-exact
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_train_state_round_trip_and_errors(tmp_path):
    model = _Tiny()
    opt = build_optimizer(model.parameters(), "adamw", lr=1e-3)
    loss, _ = model(_batch(0, 0))
    loss.backward()
    opt.step()
    save_train_state(
        tmp_path / "s.safetensors", model, opt, 1, {"x": 1}, extra_tensors={"h": torch.arange(3.0)}
    )
    model2 = _Tiny()
    opt2 = build_optimizer(model2.parameters(), "adamw", lr=1e-3)
    meta = load_train_state(tmp_path / "s.safetensors", model2, opt2)
    assert meta["step"] == 1 and meta["config"] == {"x": 1}
    assert torch.equal(meta["tensors"]["h"], torch.arange(3.0))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[q]["exp_avg_sq"])
    assert opt2.state_dict()["param_groups"][0]["lr"] == 1e-3
    with pytest.raises(InputError, match="does not match"):
        load_train_state(tmp_path / "s.safetensors", nn.Linear(2, 2))
    with pytest.raises(InputError, match="not found"):
        load_train_state(tmp_path / "missing.safetensors", model2)


def test_resume_refuses_changed_seed(tmp_path):
    t = _trainer(tmp_path, 5)
    t.fit()
    other = _trainer(tmp_path, 5)
    other.config.seed = 8
    with pytest.raises(InputError, match="seed"):
        other.resume()


def test_nan_loss_is_reported():
    cfg = TrainConfig(steps=1, progress=False, checkpoint_every=0)
    model = nn.Linear(2, 1)
    t = Trainer(model, lambda m, b: (m(b).sum() * math.nan, {}), lambda s, r: torch.ones(1, 2), cfg)
    with pytest.raises(FloatingPointError):
        t.fit()


def test_timed_checkpoints_and_hooks(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, 6)
    trainer.config.checkpoint_every = 0
    trainer.config.checkpoint_minutes = 1e-9  # due after every step
    saved, seen = [], []
    real_save = Trainer.save

    def save(self):
        saved.append(self.step)
        real_save(self)

    monkeypatch.setattr(Trainer, "save", save)
    trainer.hooks.append(lambda step, metrics: {"hook": float(step)})
    trainer.on_step = lambda step, metrics: seen.append(metrics)
    trainer.fit()
    assert saved == [1, 2, 3, 4, 5, 6]  # timed saves; no extra final save
    assert [m["hook"] for m in seen] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(m["data_ms"] >= 0 and m["step_ms"] >= m["data_ms"] for m in seen)
    assert all(set(m) >= {"loss", "mse", "lr", "grad_norm"} for m in seen)

    quiet = _trainer(tmp_path / "q", 4)
    quiet.config.checkpoint_every, quiet.config.checkpoint_minutes = 0, 0.0
    saved.clear()
    quiet.fit()
    assert saved == [4]  # only the final state
