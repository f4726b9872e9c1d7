"""Genre fusion settings: each starts as the no-genre model, trains its own part, and
survives save/load and every inference path."""

from __future__ import annotations

import pytest
import torch

from sseg.modeling.context import ContextConfig
from sseg.modeling.genre_fusion import FUSIONS, GenreFusion
from sseg.modeling.model import SceneModel

DIM = 16


def _bank(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(21, DIM, generator=g), dim=-1)


def _model(fusion: str, seed: int = 0) -> SceneModel:
    torch.manual_seed(seed)
    cfg = ContextConfig(input_dim=DIM, hidden=16, heads=2, layers=1, window=5, dropout=0.0)
    return SceneModel(_bank(), cfg, genre_fusion=fusion).eval()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_untrained_fusion_is_the_plain_keyframe_mean(fusion):
    keyframes = torch.randn(7, 3, DIM)
    shots = GenreFusion(_bank(), fusion).shot_features(keyframes)
    torch.testing.assert_close(shots, keyframes.mean(1))


@pytest.mark.parametrize("fusion", ["ag_residual", "frame_concat", "token_concat"])
def test_trained_part_changes_the_output_and_gets_gradients(fusion):
    model = _model(fusion)
    windows, valid = torch.randn(4, 5, 3, DIM), torch.ones(4, 5, dtype=torch.bool)
    valid[0, :2] = False
    before = model(windows, valid).detach()
    trainable = [p for p in model.genre_residual.parameters() if p.requires_grad]
    assert trainable
    model(windows, valid).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    with torch.no_grad():
        for p in trainable:
            p.add_(0.5 * torch.randn_like(p))
    assert not torch.allclose(model(windows, valid), before)


def test_no_genre_fusion_has_nothing_to_train():
    model = _model("none")
    assert not [p for p in model.genre_residual.parameters() if p.requires_grad]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_predict_matches_forward_and_survives_save_load(fusion, tmp_path):
    model = _model(fusion)
    with torch.no_grad():
        for p in model.genre_residual.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    keyframes = torch.randn(9, 3, DIM)
    probs = model.predict(keyframes)
    # window centred on shot 4 (fully inside the video) through forward()
    logit = model(keyframes[2:7][None], torch.ones(1, 5, dtype=torch.bool))
    torch.testing.assert_close(probs[4], torch.sigmoid(logit)[0])
    model.save(tmp_path / "m.safetensors")
    loaded = SceneModel.load(tmp_path / "m.safetensors")
    assert loaded.genre_fusion == fusion
    torch.testing.assert_close(loaded.predict(keyframes), probs)


def test_fresh_context_keeps_genre_weights_and_reinitialises_the_rest():
    model = _model("ag_residual")
    with torch.no_grad():
        model.genre_residual.weight.add_(torch.randn(DIM, DIM))
    fresh = model.fresh_context(seed=3)
    assert torch.equal(fresh.genre_residual.weight, model.genre_residual.weight)
    old, new = model.boundary.state_dict(), fresh.boundary.state_dict()
    assert not torch.equal(old["encoder.input_proj.weight"], new["encoder.input_proj.weight"])
    again = model.fresh_context(seed=3)
    for key, value in again.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="genre fusion"):
        GenreFusion(_bank(), "late_concat")
