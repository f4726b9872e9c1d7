"""The open_clip-free CLIP image tower and transform equal open_clip's, and the loaders
(local file, cached seeded random init) give the same weights as ``load_clip``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sseg.errors import InputError
from sseg.modeling import clip_backbone
from sseg.modeling.clip_backbone import (
    NotSemanticWarning,
    SafetensorsTensors,
    load_clip,
    load_image_tower,
    random_visual_cache_path,
)
from sseg.modeling.clip_vision import VIT_B_32, CLIPImageTower, ClipPreprocess, VisionConfig
from sseg.modeling.encoder import preprocess_frames
from sseg.modeling.genres import image_tower_fingerprint

SEED = 7


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh cache folder per test: never the user's ~/.cache/sseg."""
    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def reference():
    """open_clip's seeded random-init ViT-B-32: (model, preprocess)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotSemanticWarning)
        model, preprocess, _ = load_clip(None, seed=SEED)
    return model, preprocess


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(3))


def _tower(model) -> CLIPImageTower:
    return CLIPImageTower.from_state_dict(model.state_dict(), VIT_B_32, model.sseg_model_id)


def _assert_same_tower(tower, model, images) -> None:
    assert image_tower_fingerprint(tower) == image_tower_fingerprint(model)
    with torch.inference_mode():
        assert (tower.encode_image(images) - model.encode_image(images)).abs().max() < 1e-4
    with torch.no_grad():
        assert (tower.encode_image(images) - model.encode_image(images)).abs().max() < 1e-4


def test_tower_equals_open_clip_encode_image_and_fingerprint(reference, images):
    model, _ = reference
    tower = _tower(model)
    assert not tower.training and not any(p.requires_grad for p in tower.parameters())
    assert all(k.startswith("visual.") for k in tower.state_dict())
    assert tower.sseg_model_id == f"ViT-B-32:random-seed{SEED}"
    assert VisionConfig.from_state_dict(model.state_dict()) == VIT_B_32
    _assert_same_tower(tower, model, images)
    perturbed = {k: v.clone() for k, v in model.state_dict().items()}
    perturbed["visual.proj"] += 0.1
    other = CLIPImageTower.from_state_dict(perturbed, VIT_B_32)
    assert image_tower_fingerprint(other) != image_tower_fingerprint(model)


def test_tower_moves_and_casts(reference, images):
    tower = _tower(reference[0]).to("cpu")
    with torch.inference_mode():
        full = tower.encode_image(images)
        half = tower.to(torch.bfloat16).encode_image(images)  # input cast to the weights
    assert half.dtype == torch.bfloat16 and half.shape == full.shape
    cos = torch.nn.functional.cosine_similarity(half.float(), full, dim=-1)
    assert (cos > 0.98).all()


@pytest.mark.parametrize("shape", [(96, 160), (301, 201), (224, 300), (225, 224), (10, 23)])
def test_transform_equals_open_clip(reference, shape):
    frame = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours, theirs = ClipPreprocess(), reference[1]
    expected = theirs(Image.fromarray(frame))
    assert torch.equal(ours(Image.fromarray(frame)), expected)
    assert torch.equal(ours(frame), expected)
    assert torch.equal(preprocess_frames([frame, frame], ours), torch.stack([expected] * 2))


def test_random_init_is_computed_once_then_read_without_open_clip(
    reference, images, cache, monkeypatch
):
    with pytest.warns(NotSemanticWarning):
        first, preprocess = load_image_tower(None, seed=SEED)
    path = random_visual_cache_path("ViT-B-32", SEED)
    assert path.parent == cache and path.is_file()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]

    def no_open_clip(*args, **kwargs):
        raise AssertionError("open_clip used although the cache holds the tower")

    monkeypatch.setattr(clip_backbone, "load_clip", no_open_clip)
    with pytest.warns(NotSemanticWarning):
        again, _ = load_image_tower(None, seed=SEED)
    assert again.sseg_model_id == reference[0].sseg_model_id
    assert isinstance(preprocess, ClipPreprocess)
    _assert_same_tower(first, reference[0], images)
    _assert_same_tower(again, reference[0], images)


def test_unreadable_or_foreign_cache_is_recomputed(reference, images):
    path = random_visual_cache_path("ViT-B-32", SEED)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00truncated")
    with pytest.warns(NotSemanticWarning), pytest.warns(UserWarning, match="unreadable CLIP"):
        tower, _ = load_image_tower(None, seed=SEED)
    _assert_same_tower(tower, reference[0], images)
    save_file({"visual.proj": torch.zeros(2)}, str(path), metadata={"format": "other"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotSemanticWarning)
        tower, _ = load_image_tower(None, seed=SEED)
    _assert_same_tower(tower, reference[0], images)


@pytest.mark.parametrize("fmt", ["safetensors", "safetensors-ddp", "pt-openai"])
def test_local_file_equals_load_clip(reference, images, tmp_path, fmt):
    state = {k: v.clone() for k, v in reference[0].state_dict().items()}
    state["visual.proj"] += 0.5
    if fmt.startswith("safetensors"):
        prefix = "module." if fmt == "safetensors-ddp" else ""  # saved from a DDP wrapper
        path = tmp_path / "clip.safetensors"
        save_file({prefix + k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # OpenAI's layout (QuickGELU), wrapped by a trainer
        path = tmp_path / "clip.pt"
        extra = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77)}
        extra["vocab_size"] = torch.tensor(49408)
        torch.save({"state_dict": {f"module.{k}": v for k, v in (state | extra).items()}}, path)
    full, _, _ = load_clip(path)
    tower, _ = load_image_tower(path)
    assert tower.sseg_model_id == full.sseg_model_id
    assert tower.config.quick_gelu == (fmt == "pt-openai")
    _assert_same_tower(tower, full, images)


def test_local_file_errors_are_one_line_input_errors(reference, tmp_path):
    with pytest.raises(InputError, match="missing.safetensors: CLIP checkpoint file not found"):
        load_image_tower(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(InputError, match="garbage.pt: cannot read CLIP checkpoint"):
        load_image_tower(garbage)
    state = {k: v.contiguous() for k, v in reference[0].state_dict().items()}
    del state["visual.proj"]
    state["visual.extra_head"] = torch.zeros(3)
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong))
    with pytest.raises(InputError, match=r"wrong.safetensors: .*1 missing keys \['visual.proj'\]"):
        load_image_tower(wrong)
    state = {k: v.contiguous() for k, v in reference[0].state_dict().items()}
    state["visual.proj"] = torch.zeros(768, 256)
    save_file(state, str(wrong))
    with pytest.raises(InputError, match=r"shapes do not match.*visual.proj \(768, 256\)"):
        load_image_tower(wrong)


def test_unwritable_cache_only_warns(reference, images, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(clip_backbone, "cache_random_visual", read_only)
    with pytest.warns(NotSemanticWarning), pytest.warns(UserWarning, match="cannot cache"):
        tower, _ = load_image_tower(None, seed=SEED)
    assert not random_visual_cache_path("ViT-B-32", SEED).exists()
    _assert_same_tower(tower, reference[0], images)


def test_bf16_load_keeps_the_fp32_fingerprint_and_outputs(reference, images):
    """Loaded straight into bf16 (tensor by tensor), the tower records the fp32 weights'
    fingerprint and encodes like the fp32 tower, to bf16 rounding."""
    clip_model = reference[0]
    state = clip_model.state_dict()
    fp32 = CLIPImageTower.from_state_dict(state, VIT_B_32, clip_model.sseg_model_id)
    bf16 = CLIPImageTower.from_state_dict(
        state, VIT_B_32, clip_model.sseg_model_id, dtype=torch.bfloat16
    )
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert bf16.weights_fingerprint == fp32.weights_fingerprint
    assert fp32.weights_fingerprint == image_tower_fingerprint(clip_model)
    with torch.inference_mode():
        exact, rounded = fp32.encode_image(images), bf16.encode_image(images).float()
    assert torch.nn.functional.cosine_similarity(exact, rounded).min() > 0.99


def test_bf16_load_from_safetensors_holds_one_fp32_tensor_at_a_time(tmp_path):
    """Each tensor is read and converted in turn: the fp32 tower is never held whole (as
    reading the file through one open handle did, 1.5x the file in peak RSS)."""
    import weakref

    from safetensors.torch import save_file

    cfg = VisionConfig(width=128, layers=2, mlp_width=512)
    with torch.device("meta"):
        shapes = CLIPImageTower(cfg).state_dict()
    state = {name: torch.randn(t.shape) for name, t in shapes.items()}
    path = tmp_path / "tower.safetensors"
    save_file(state, str(path))
    alive, most = [0], [0]

    class Counted(SafetensorsTensors):
        def __getitem__(self, name):
            tensor = super().__getitem__(name)
            alive[0] += 1
            most[0] = max(most[0], alive[0])
            weakref.finalize(tensor, lambda: alive.__setitem__(0, alive[0] - 1))
            return tensor

    tower = CLIPImageTower.from_state_dict(Counted(path), cfg, dtype=torch.bfloat16)
    assert most[0] == 1 and alive[0] == 0
    assert {p.dtype for p in tower.parameters()} == {torch.bfloat16}
    reference = CLIPImageTower.from_state_dict(state, cfg)
    assert tower.weights_fingerprint == reference.weights_fingerprint
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tower.state_dict()[name], tensor.to(torch.bfloat16))
