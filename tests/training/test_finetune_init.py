"""``sseg finetune`` initialisation: deterministic from --seed; --init keeps only the
pre-trained shot-level part unless --init-context asks for the encoder too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sseg.cli import main
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel

DIM = 32
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(make_synthetic_store):
    return make_synthetic_store(6, shots=(20, 40), dim=DIM, seed=7)


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory):
    torch.manual_seed(11)
    bank = torch.from_numpy(np.load(store.root / "genre_bank.npy"))
    cfg = ContextConfig(input_dim=DIM, hidden=16, heads=2, layers=1, window=5, dropout=0.1)
    model = SceneModel(bank, cfg)
    with torch.no_grad():
        model.genre_residual.weight.normal_(0, 0.05)  # as if pre-trained
    path = tmp_path_factory.mktemp("pre") / "pretrained.safetensors"
    model.save(path)
    return path


def _finetune(store, out, *extra: str) -> SceneModel:
    args = ["finetune", "--features", str(store.root), "--out", str(out), "--no-progress"]
    args += ["--steps", "5", "--batch-size", "8", "--warmup", "1", "--checkpoint-every", "0"]
    assert main([*args, *extra]) == 0
    return SceneModel.load(out / "model.safetensors")


def _same(a: SceneModel, b: SceneModel) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fresh_finetune_is_bit_identical_for_the_same_seed(store, tmp_path):
    small = ["--hidden", "16", "--heads", "2", "--layers", "1", "--window", "5"]
    first = _finetune(store, tmp_path / "a", *small, "--seed", "4")
    second = _finetune(store, tmp_path / "b", *small, "--seed", "4")
    other = _finetune(store, tmp_path / "c", *small, "--seed", "5")
    assert _same(first, second)
    assert not _same(first, other)


def test_init_keeps_genre_weights_and_trains_a_fresh_context_model(store, pretrained, tmp_path):
    source = SceneModel.load(pretrained)
    tuned = _finetune(store, tmp_path / "paper", "--init", str(pretrained))
    again = _finetune(store, tmp_path / "paper2", "--init", str(pretrained))
    assert _same(tuned, again)
    assert torch.equal(tuned.genre_residual.weight, source.genre_residual.weight)
    fresh = source.fresh_context(seed=0)  # the same seed, before any step
    key = "boundary.encoder.input_proj.weight"
    assert not torch.equal(fresh.state_dict()[key], source.state_dict()[key])


def test_init_context_starts_from_the_pretrained_encoder(store, pretrained, tmp_path):
    source = SceneModel.load(pretrained)
    tuned = _finetune(store, tmp_path / "bassl", "--init", str(pretrained), "--init-context",
                      "--lr", "1e-12")  # fmt: skip
    key = "boundary.encoder.input_proj.weight"
    torch.testing.assert_close(tuned.state_dict()[key], source.state_dict()[key], atol=1e-6,
                               rtol=0)  # fmt: skip
    head = "boundary.head.mlp.0.weight"
    assert not torch.allclose(tuned.state_dict()[head], source.state_dict()[head], atol=1e-3)


def test_init_context_without_init_is_refused(store, tmp_path, capsys):
    args = ["finetune", "--features", str(store.root), "--out", str(tmp_path), "--init-context"]
    assert main(args) == 2
    assert "--init-context needs --init" in capsys.readouterr().err
