"""The 21 IMDb genres of the genre prior, their text definitions and cached CLIP embeddings.

IMDb lists 22 feature-film genres; the paper uses 21. MovieNet (the training and
evaluation corpus) holds feature films, so we drop **Documentary**: it describes a mode
of filmmaking rather than a set of visual scene conventions, and MovieNet's fiction
films almost never carry it. The genre bank G is the CLIP text embedding (L2-normalised)
of each genre's definition; definitions beat bare names in the paper.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..errors import InputError

GENRE_DEFINITIONS: dict[str, str] = {
    "Action": "Action film: fast cutting, chases, fights, explosions and stunts; bodies and "
    "vehicles in constant motion through streets, rooftops and warehouses.",
    "Adventure": "Adventure film: travellers crossing jungles, deserts, oceans and mountains; "
    "expeditions, maps, ships and ancient ruins seen in wide shots of distant places.",
    "Animation": "Animated film: drawn, painted or computer-generated images instead of "
    "photographs; stylised colours, exaggerated characters and smooth simple shapes.",
    "Biography": "Biographical film: the life of a real person over decades; period costumes, "
    "homes, offices and public events, with dates on screen and archival-looking footage.",
    "Comedy": "Comedy film: bright, evenly lit scenes of people talking, reacting and laughing "
    "in homes, offices and parties; pratfalls, awkward encounters and wide shots of gags.",
    "Crime": "Crime film: criminals and police in the city at night; robberies, "
    "interrogations, stakeouts, guns, money and cars in dim bars, alleys and police stations.",
    "Drama": "Drama film: people in emotional conflict in ordinary rooms, kitchens and "
    "hospitals; long conversations in close-up, natural light and a slow, deliberate pace.",
    "Family": "Family film: children, parents and pets in warm, brightly lit homes, schools "
    "and gardens; gentle adventures and reunions in cheerful colours, without graphic violence.",
    "Fantasy": "Fantasy film: magic and mythical creatures in castles, enchanted forests and "
    "imaginary kingdoms; glowing spells, robes, swords and dragons under unreal skies.",
    "Film-Noir": "Film noir: black-and-white crime stories with hard low-key light, deep "
    "shadows, blind-slat stripes, rain-slick streets at night and detectives in hats.",
    "History": "Historical film: past events recreated with period costumes, armies, royal "
    "courts and old towns; battles, ceremonies and candle-lit interiors.",
    "Horror": "Horror film: darkness, fog and flickering light in old houses, cellars and "
    "woods; frightened faces, monsters and blood, sudden shocks after slow, tense silence.",
    "Music": "Music film: musicians rehearsing, recording and performing on stages, in studios "
    "and clubs; instruments, microphones, crowds and concert lights.",
    "Musical": "Musical film: characters burst into song and choreographed dance on stage-like "
    "sets or streets, in colourful costumes, wide group shots and theatrical lighting.",
    "Mystery": "Mystery film: an investigator follows clues to a hidden secret; searched rooms, "
    "letters, photographs and suspicious glances in shadowy mansions and quiet towns.",
    "Romance": "Romance film: two people falling in love; intimate close-ups in soft warm "
    "light, dinners, walks, kisses, weddings and partings at stations or in the rain.",
    "Sci-Fi": "Science fiction film: futuristic technology, spaceships, robots and alien "
    "worlds; sleek laboratories, glowing screens, cold blue light and space effects.",
    "Sport": "Sports film: athletes training and competing in stadiums, gyms, rings and "
    "fields; cheering crowds, scoreboards, slow-motion action and locker-room talks.",
    "Thriller": "Thriller film: suspense and danger building to a confrontation; pursuits, "
    "surveillance, phone calls and hidden threats, with tight framing and quickening cuts.",
    "War": "War film: soldiers in combat with tanks, aircraft and rifles; trenches, ruined "
    "towns and camps, smoke, explosions, uniforms and muddy, desaturated colours.",
    "Western": "Western film: cowboys, horses and gunfights on the American frontier; deserts, "
    "dusty towns, saloons, ranches and wide sunlit plains.",
}
GENRES: tuple[str, ...] = tuple(GENRE_DEFINITIONS)
MODES = ("definition", "name")
# IMDb genres that are not in the bank: ignored (not an error) when metadata lists them.
EXCLUDED_GENRES = frozenset(
    {"documentary", "news", "realitytv", "talkshow", "gameshow", "adult", "short"}
)
_ALIASES = {
    "sciencefiction": "Sci-Fi",
    "scifi": "Sci-Fi",
    "noir": "Film-Noir",
    "filmnoir": "Film-Noir",
    "biopic": "Biography",
    "sports": "Sport",
    "historical": "History",
    "animated": "Animation",
}
_FORMAT = "sseg.genre_embeddings.v1"


def genre_texts(mode: str = "definition") -> list[str]:
    """The 21 texts fed to the CLIP text encoder: full definitions or bare names."""
    if mode == "definition":
        return list(GENRE_DEFINITIONS.values())
    if mode == "name":
        return list(GENRES)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_LOOKUP = {_key(g): g for g in GENRES} | _ALIASES


def genre_mask(genres: Iterable[str], source: str | Path | None = None) -> torch.Tensor:
    """(21,) bool mask of the genres a video's metadata lists (case/punctuation-insensitive).

    IMDb genres outside the bank (Documentary, News, ...) are ignored; any other unknown
    name raises :class:`InputError` naming ``source``. An all-False mask means "no genre
    information": AG-Residual then uses every genre.
    """
    mask = torch.zeros(len(GENRES), dtype=torch.bool)
    for name in genres:
        key = _key(str(name))
        if key in EXCLUDED_GENRES:
            continue
        if key not in _LOOKUP:
            raise InputError(f"unknown genre {name!r}; known genres: {', '.join(GENRES)}", source)
        mask[GENRES.index(_LOOKUP[key])] = True
    return mask


def default_cache_dir() -> Path:
    """``$SSEG_CACHE_DIR`` or ``~/.cache/sseg``."""
    return Path(os.environ.get("SSEG_CACHE_DIR") or Path.home() / ".cache" / "sseg")


def text_tower_fingerprint(clip_model: torch.nn.Module) -> str:
    """Hash of the text tower's weights (every non-``visual.`` tensor).

    Each tensor contributes its name, shape, dtype, float64 sum and a strided sample of
    up to 4096 values, so any re-initialisation or fine-tune changes the fingerprint
    without hashing all ~63M values.
    """
    return _weights_fingerprint(clip_model, visual=False)


def image_tower_fingerprint(clip_model: torch.nn.Module) -> str:
    """Hash of the image tower's weights (every ``visual.`` tensor), computed like
    :func:`text_tower_fingerprint`: the same weights give the same value wherever the
    checkpoint file lives."""
    return _weights_fingerprint(clip_model, visual=True)


def _weights_fingerprint(clip_model: torch.nn.Module, visual: bool) -> str:
    fingerprint = WeightsFingerprint()
    for name, tensor in clip_model.state_dict().items():
        if name.startswith("visual.") == visual:
            fingerprint.add(name, tensor)
    return fingerprint.hexdigest()


class WeightsFingerprint:
    """The weights hash of :func:`image_tower_fingerprint`, fed one tensor at a time (in
    ``state_dict`` order), so a loader can take it before converting each tensor."""

    def __init__(self):
        self._digest = hashlib.sha256()

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Hash ``tensor`` (floating-point ones only, as the module's hash does)."""
        if not tensor.is_floating_point():
            return
        with torch.no_grad():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            sample = flat[::step][:4096].to("cpu", torch.float32).contiguous()
            self._digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
            self._digest.update(repr(float(flat.sum(dtype=torch.float64))).encode())
            self._digest.update(sample.numpy().tobytes())

    def hexdigest(self) -> str:
        """The fingerprint (16 hex digits)."""
        return self._digest.hexdigest()[:16]


def _cache_key(texts: Sequence[str], model_id: str, fingerprint: str) -> str:
    payload = json.dumps(
        {"format": _FORMAT, "texts": list(texts), "model": model_id, "weights": fingerprint}
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def encode_texts(clip_model, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised CLIP text embeddings (len(texts), D), float32 on CPU."""
    device = next(clip_model.parameters()).device
    with torch.no_grad():
        tokens = tokenizer(list(texts)).to(device)
        emb = clip_model.encode_text(tokens).float()
    return torch.nn.functional.normalize(emb, dim=-1).cpu()


def genre_embeddings(
    clip_model,
    tokenizer,
    mode: str = "definition",
    cache_dir: str | Path | None = None,
    model_id: str | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Genre bank G (21, D): CLIP text embeddings of :func:`genre_texts`, cached on disk.

    The cache file is keyed by a hash of the texts, ``model_id`` (default: the model's
    ``sseg_model_id`` attribute set by :func:`sseg.modeling.clip_backbone.load_clip`, else its class
    name) and :func:`text_tower_fingerprint`, so changing either texts or weights
    recomputes; an unreadable cache file is recomputed and replaced.
    """
    texts = genre_texts(mode)
    if not use_cache:
        return encode_texts(clip_model, tokenizer, texts)
    model_id = model_id or getattr(clip_model, "sseg_model_id", None) or type(clip_model).__name__
    key = _cache_key(texts, model_id, text_tower_fingerprint(clip_model))
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / f"genre-embeddings-{mode}-{key}.safetensors"
    if path.is_file():
        try:
            cached = load_file(str(path))["embeddings"]
            if cached.shape[0] == len(texts):
                return cached
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            warnings.warn(f"{path}: unreadable genre cache, recomputing ({exc})", stacklevel=2)
    emb = encode_texts(clip_model, tokenizer, texts).contiguous()
    metadata = {"format": _FORMAT, "model": model_id, "mode": mode, "texts": json.dumps(texts)}
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb}, str(tmp), metadata=metadata)
    return emb
