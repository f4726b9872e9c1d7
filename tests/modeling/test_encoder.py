"""CLIP loader and ShotEncoder on a random-init ViT-B/32 (few tiny images: ~50 ms each)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sseg._compat import import_open_clip
from sseg.errors import InputError, SsegError
from sseg.modeling import clip_backbone
from sseg.modeling.clip_backbone import NotSemanticWarning, load_clip
from sseg.modeling.encoder import ShotEncoder, preprocess_frames
from sseg.modeling.genres import genre_embeddings


@pytest.fixture(scope="module")
def clip():
    with pytest.warns(NotSemanticWarning):
        return load_clip(None)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bank(clip, cache_dir):
    model, _, tokenizer = clip
    return genre_embeddings(model, tokenizer, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 2, 3, 224, 224, generator=gen)  # 2 shots x 2 keyframes


def _perturbed_state(model) -> dict[str, torch.Tensor]:
    """A full state dict that differs from the seeded random init."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["visual.proj"] += 0.5
    state["text_projection"] *= -1.0
    return state


def test_random_init_is_seeded_deterministic_frozen_and_warns(clip):
    model, preprocess, tokenizer = clip
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.sseg_model_id == "ViT-B-32:random-seed0"
    assert tokenizer(["a"]).shape == (1, 77) and callable(preprocess)
    with pytest.warns(NotSemanticWarning, match="not semantic"):
        again, _, _ = load_clip(None)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("fmt", ["safetensors", "pt-openai"])
def test_local_checkpoint_round_trip(clip, tmp_path, fmt):
    model = clip[0]
    state = _perturbed_state(model)
    if fmt == "safetensors":
        path = tmp_path / "clip.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # OpenAI's own JIT-free layout: same names + 3 int entries, wrapped by a trainer
        path = tmp_path / "clip.pt"
        extra = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77)}
        extra["vocab_size"] = torch.tensor(49408)
        torch.save({"state_dict": {f"module.{k}": v for k, v in (state | extra).items()}}, path)
    loaded, _, _ = load_clip(path)
    for name, tensor in state.items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert str(path.resolve()) in loaded.sseg_model_id
    gelu = type(loaded.transformer.resblocks[0].mlp.gelu).__name__
    assert gelu == ("QuickGELU" if fmt == "pt-openai" else "GELU")


def test_bad_checkpoints_raise_input_error_naming_the_file(clip, tmp_path):
    with pytest.raises(InputError, match="missing.safetensors: CLIP checkpoint file not found"):
        load_clip(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(InputError, match="garbage.pt: cannot read CLIP checkpoint"):
        load_clip(garbage)
    state = _perturbed_state(clip[0])
    del state["visual.proj"]
    state["visual.extra_head"] = torch.zeros(3)
    wrong = tmp_path / "wrong.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(wrong))
    with pytest.raises(InputError, match=r"wrong.safetensors: .*1 missing keys \['visual.proj'\]"):
        load_clip(wrong)


def test_open_clip_download_failure_is_a_clear_error(monkeypatch):
    open_clip = import_open_clip()

    def offline(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'openai'")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    with pytest.raises(SsegError, match="pass its local path") as info:
        load_clip("openai")
    assert not isinstance(info.value, InputError)
    assert clip_backbone._is_path("weights/clip.bin") and not clip_backbone._is_path("openai")


def test_genre_bank_from_clip_text_tower(clip, bank):
    model, _, tokenizer = clip
    assert bank.shape == (21, 512)
    torch.testing.assert_close(bank.norm(dim=1), torch.ones(21))
    names = genre_embeddings(model, tokenizer, mode="name", use_cache=False)
    assert (names - bank).abs().max() > 1e-3


def test_from_pretrained_reuses_the_cached_genre_bank(bank, cache_dir, monkeypatch):
    from sseg.modeling import genres

    def no_encoding(*args, **kwargs):
        raise AssertionError("the genre bank should come from the cache")

    monkeypatch.setattr(genres, "encode_texts", no_encoding)
    with pytest.warns(NotSemanticWarning):
        encoder = ShotEncoder.from_pretrained(None, cache_dir=cache_dir, phi="softmax")
    torch.testing.assert_close(encoder.genre_residual.genres, bank)
    assert encoder.preprocess is not None and encoder.genre_residual.phi == "softmax"
    assert encoder.dim == 512


def test_encode_keyframes_is_batch_invariant(clip, bank, images):
    encoder = ShotEncoder(clip[0], bank, batch_size=2)
    flat = images.flatten(0, 1)[:3]
    feats = encoder.encode_keyframes(flat)
    assert feats.shape == (3, 512) and feats.dtype == torch.float32
    assert not feats.requires_grad
    encoder.batch_size = 3
    torch.testing.assert_close(encoder.encode_keyframes(flat), feats, atol=1e-4, rtol=1e-4)
    assert encoder.encode_keyframes(flat[:0]).shape == (0, 512)
    with pytest.raises(ValueError, match="images"):
        encoder.encode_keyframes(images)


def test_forward_trains_only_the_genre_weight(clip, bank, images):
    encoder = ShotEncoder(clip[0], bank, phi="softmax", temperature=0.1).train()
    assert not encoder.backbone.training
    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]
    assert trainable == ["genre_residual.weight"]

    keyframes = encoder.encode_keyframes(images.flatten(0, 1)).view(2, 2, 512)
    shots = encoder(images)
    assert shots.shape == (2, 512)
    # zero-init W: the layer is the identity, a shot is the mean of its keyframes
    torch.testing.assert_close(shots, keyframes.mean(1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(encoder.shot_features(keyframes), shots, atol=1e-4, rtol=1e-4)

    shots.square().sum().backward()
    assert encoder.genre_residual.weight.grad.abs().max() > 0
    assert all(p.grad is None for p in encoder.backbone.parameters())


def test_injection_point_and_preprocessing(clip, bank):
    with pytest.raises(ValueError, match="injection"):
        ShotEncoder(clip[0], bank, injection="tokens")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(2)]
    frames.append(np.full((300, 240, 3), 200, dtype=np.uint8))
    exact = ShotEncoder(clip[0], bank, preprocess=clip[1]).preprocess_frames(frames)
    approx = preprocess_frames(frames)
    assert exact.shape == approx.shape == (3, 3, 224, 224)
    # constant frame: both give the normalised constant exactly
    expected = (200 / 255 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    )
    torch.testing.assert_close(approx[2].mean((1, 2)), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(exact[2].mean((1, 2)), expected, atol=1e-2, rtol=0)
    # resampling differs (PIL vs torch bicubic) but only a little
    assert (exact[:2] - approx[:2]).abs().mean() < 0.15
    with pytest.raises(InputError, match="frame 1: expected shape"):
        preprocess_frames([frames[0], frames[0][..., :2]])
    with pytest.raises(InputError, match="frame 0: expected a uint8"):
        preprocess_frames([frames[0].astype(np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert preprocess_frames([]).shape == (0, 3, 224, 224)
