"""Load the frozen CLIP backbone (open_clip) from nothing, open_clip's tag, or a local file.

``load_clip(None)`` builds a seeded random-init model (deterministic, not semantic: for
tests and smoke runs). ``load_clip("openai")`` uses open_clip's own download. A local
``.safetensors`` / ``.pt`` / ``.bin`` file holding an open_clip or OpenAI (JIT-free)
CLIP state dict is loaded with ``weights_only=True`` and its keys verified.

``load_image_tower`` is the image side only, without open_clip: the same weights in a
plain-torch :class:`sseg.modeling.clip_vision.CLIPImageTower`. A seeded random init is computed
once with open_clip and its ``visual.*`` tensors cached under
:func:`sseg.segmentation.demo.cache_dir`.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._compat import import_open_clip
from ..errors import InputError, SsegError

if TYPE_CHECKING:
    from .clip_vision import CLIPImageTower, ClipPreprocess, VisionConfig

RANDOM_SEED = 0
# keys an OpenAI CLIP state dict carries beside the weights
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


class NotSemanticWarning(UserWarning):
    """The backbone has random weights: features carry no visual meaning."""


def _warn_random_weights(model_name: str) -> None:
    warnings.warn(
        f"{model_name} has random weights (pretrained=None): features are not semantic; "
        "pass a checkpoint path for real use",
        NotSemanticWarning,
        stacklevel=3,
    )


def _create(open_clip, model_name: str, pretrained: str | None, quick_gelu: bool = False):
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))  # open_clip logs a warning for pretrained=None
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device="cpu", force_quick_gelu=quick_gelu
        )
    finally:
        logger.setLevel(level)
    return model, preprocess


class SafetensorsTensors(Mapping[str, torch.Tensor]):
    """Tensors of a safetensors file, each read from the file when accessed.

    safetensors' own loader maps the whole file, and every page a loader touches stays
    resident while any tensor from it lives (a CLIP image tower converted to bf16 kept
    335 MB of fp32 pages beside its 176 MB of bf16 weights). Here each access reads just
    that tensor into fresh memory, so a loader that converts tensors one at a time holds
    one at a time. The file is checked by safetensors when opened; ``names`` maps the
    names given out to the names in the file.
    """

    def __init__(self, path: str | Path, names: dict[str, str] | None = None):
        from safetensors import safe_open

        self.path = str(path)
        with safe_open(self.path, framework="pt") as handle:  # validates header and size
            self.metadata = handle.metadata() or {}
        with open(self.path, "rb") as file:
            size = int.from_bytes(file.read(8), "little")
            self._entries = {
                name: entry
                for name, entry in json.loads(file.read(size)).items()
                if name != "__metadata__"
            }
        self._data_start = 8 + size
        self.names = {name: name for name in self._entries} if names is None else names

    def __getitem__(self, name: str) -> torch.Tensor:
        entry = self._entries[self.names[name]]
        begin, end = entry["data_offsets"]
        tensor = torch.empty(entry["shape"], dtype=_SAFETENSORS_DTYPES[entry["dtype"]])
        raw = tensor.reshape(-1).view(torch.uint8).numpy()
        if raw.nbytes != end - begin:
            raise ValueError(
                f"{self.path}: tensor {name!r} has {end - begin} bytes, not {raw.nbytes}"
            )
        with open(self.path, "rb") as file:
            file.seek(self._data_start + begin)
            if file.readinto(raw) != raw.nbytes:
                raise ValueError(f"{self.path}: tensor {name!r} is cut short")
        return tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, from the file's header (nothing read)."""
        return tuple(self._entries[self.names[name]]["shape"])

    def subset(self, names: dict[str, str]) -> SafetensorsTensors:
        """The tensors ``{new name: name here}``, still unread."""
        view = copy.copy(self)
        view.names = {new: self.names[old] for new, old in names.items()}
        return view


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Name -> shape, without reading a :class:`SafetensorsTensors`' tensors."""
    if isinstance(state, SafetensorsTensors):
        return {name: state.shape(name) for name in state}
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def _read_safetensors(path: Path, prefix: str) -> Mapping[str, torch.Tensor]:
    """The tensors of a safetensors file whose names start with ``prefix`` (after an
    optional ``module.``, which is dropped), plus OpenAI's extra keys; the others are
    never read. With a prefix they are read when used (:class:`SafetensorsTensors`)."""
    from safetensors.torch import load_file

    if not prefix:
        return load_file(str(path))
    tensors = SafetensorsTensors(path)
    return tensors.subset(
        {
            name.removeprefix("module."): name
            for name in tensors
            if name.removeprefix("module.").startswith(prefix)
            or name.removeprefix("module.") in _OPENAI_EXTRA_KEYS
        }
    )


def _read_state_dict(path: Path, prefix: str = "") -> tuple[dict[str, torch.Tensor], bool]:
    """(state dict, is_openai_format); OpenAI's own dicts carry ``input_resolution``.

    The file's content, not its suffix, picks the reader: safetensors, or torch.load with
    ``weights_only=True`` (tensors and plain containers only; nothing else is unpickled).
    With ``prefix`` (e.g. ``"visual."``) only the tensors whose names start with it are
    returned (and, from safetensors, read).
    """
    from ..checkpoint import SAFETENSORS, TORCHSCRIPT, UNKNOWN, one_line, weights_file_kind

    kind = weights_file_kind(path)
    if kind == TORCHSCRIPT:
        raise InputError(
            "is a TorchScript archive (e.g. OpenAI's original JIT ViT-B-32.pt), which sseg does "
            "not load because it holds code; use open_clip's ViT-B-32 weights "
            "(open_clip_pytorch_model.bin or .safetensors) or a plain state dict",
            path,
        )
    if kind == UNKNOWN:
        raise InputError(
            "cannot read CLIP checkpoint: not a safetensors, torch.save or pickle file "
            "(unrecognised or truncated)",
            path,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            if kind == SAFETENSORS:
                state = _read_safetensors(path, prefix)
            else:  # a file object: torch.load would pick its reader by the name's suffix
                with open(path, "rb") as handle:
                    state = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            "cannot read CLIP checkpoint: it holds pickled Python objects besides tensors "
            "(e.g. a whole model, optimizer state or training arguments), which sseg never "
            "unpickles; give a file holding only the state dict (tensors), or .safetensors",
            path,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise InputError(
            f"cannot read CLIP checkpoint ({type(exc).__name__}: {one_line(exc)})", path
        ) from exc
    if isinstance(state, SafetensorsTensors):  # names already plain; tensors still unread
        openai_format = "input_resolution" in state
        kept = [k for k in state if k not in _OPENAI_EXTRA_KEYS and k.startswith(prefix)]
        return state.subset({k: k for k in kept}), openai_format
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("not a CLIP state dict (expected a mapping of names to tensors)", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    openai_format = "input_resolution" in state
    kept = {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS and k.startswith(prefix)}
    return kept, openai_format


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # buffers that are derived, not learned (e.g. the causal attention mask)
    derived = {name for name, _ in model.named_buffers()}
    _check_state(expected, derived, state, path)
    model.load_state_dict(state, strict=False)


def _check_state(
    expected: dict[str, tuple[int, ...]],
    derived: set[str],
    state: Mapping[str, torch.Tensor],
    path: Path,
) -> None:
    """InputError (one line) unless ``state`` has exactly the expected names and shapes."""
    missing = sorted(set(expected) - set(state) - derived)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"checkpoint does not match the model: {len(missing)} missing keys "
            f"{missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]}",
            path,
        )
    shapes = _shapes(state)
    bad = [k for k, shape in shapes.items() if shape != expected[k]]
    if bad:
        k = bad[0]
        raise InputError(
            f"checkpoint shapes do not match the model: {len(bad)} tensors differ, e.g. "
            f"{k} {shapes[k]} vs {expected[k]}",
            path,
        )


def _file_model_id(model_name: str, path: Path) -> str:
    stat = path.stat()
    return f"{model_name}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _is_path(pretrained: str | Path) -> bool:
    text = str(pretrained)
    return (
        isinstance(pretrained, Path)
        or Path(text).suffix in _SUFFIXES
        or "/" in text
        or Path(text).is_file()
    )


def load_clip(
    pretrained: str | Path | None,
    model_name: str = "ViT-B-32",
    device: str | torch.device = "cpu",
    seed: int = RANDOM_SEED,
):
    """Return ``(model, preprocess, tokenizer)`` with the model in eval mode and frozen.

    ``pretrained``: ``None`` (seeded random init), an open_clip tag such as ``"openai"``,
    or a path to a local checkpoint file (open_clip state dict, or OpenAI's JIT-free one,
    which is built with QuickGELU; for open_clip dicts of QuickGELU weights pass
    ``model_name="ViT-B-32-quickgelu"``). The model gets an ``sseg_model_id`` attribute
    (name + source) used to key caches.

    Raises:
        InputError: a local checkpoint is missing, unreadable or does not match.
        SsegError: an open_clip download failed (e.g. offline).
    """
    open_clip = import_open_clip()
    device = str(device)
    if pretrained is None:
        _warn_random_weights(model_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, preprocess = _create(open_clip, model_name, None)
        model_id = f"{model_name}:random-seed{seed}"
    elif _is_path(pretrained):
        path = Path(pretrained)
        if not path.is_file():
            raise InputError("CLIP checkpoint file not found", path)
        state, openai_format = _read_state_dict(path)
        model, preprocess = _create(open_clip, model_name, None, quick_gelu=openai_format)
        _load_weights(model, state, path)
        model_id = _file_model_id(model_name, path)
    else:
        try:
            model, preprocess = _create(open_clip, model_name, str(pretrained))
        except Exception as exc:  # noqa: BLE001 - network, hub and tag errors alike
            raise SsegError(
                f"could not get CLIP weights {model_name}/{pretrained!r} from open_clip "
                f"({type(exc).__name__}: {str(exc)[:200]}); without internet, download the "
                "checkpoint elsewhere and pass its local path (.safetensors, .pt or .bin)"
            ) from exc
        model_id = f"{model_name}:{pretrained}"
    model = model.to(device).eval()
    model.requires_grad_(False)
    model.sseg_model_id = model_id
    return model, preprocess, open_clip.get_tokenizer(model_name)


# --- image tower without open_clip ---------------------------------------------------

_RANDOM_CACHE_FORMAT = "sseg-clip-visual-v1"


def _visual_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The image tower's tensors (``visual.*``) of a full open_clip model."""
    from .clip_vision import PREFIX

    return {k: v for k, v in model.state_dict().items() if k.startswith(PREFIX)}


def _vision_config(model_name: str, quick_gelu: bool = False) -> VisionConfig | None:
    """The tower config of open_clip's ``ViT-B-32`` / ``ViT-B-32-quickgelu`` (else None)."""
    from .clip_vision import VIT_B_32

    base, _, tail = model_name.partition("-quickgelu")
    if base != "ViT-B-32" or tail:
        return None
    return replace(VIT_B_32, quick_gelu=quick_gelu or model_name.endswith("-quickgelu"))


def _open_clip_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("open_clip_torch")
    except PackageNotFoundError:
        return "none"


def random_visual_cache_path(model_name: str, seed: int) -> Path:
    """Where the ``visual.*`` tensors of ``load_clip(None, model_name, seed=seed)`` are
    cached: :func:`sseg.segmentation.demo.cache_dir`, keyed by model, seed and open_clip version."""
    from ..segmentation.demo import cache_dir

    name = f"clip-visual-{model_name}-seed{seed}-open_clip{_open_clip_version()}.safetensors"
    return cache_dir() / name


def cache_random_visual(model: torch.nn.Module, model_name: str, seed: int) -> Path:
    """Store the image tower of ``model`` (= ``load_clip(None, model_name, seed=seed)``)
    in the random-init cache (atomic write); returns the cache path."""
    from safetensors.torch import save_file

    from ..atomic import atomic_path

    path = random_visual_cache_path(model_name, seed)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in _visual_state(model).items()
    }
    metadata = {
        "format": _RANDOM_CACHE_FORMAT,
        "model": model_name,
        "seed": str(seed),
        "open_clip": _open_clip_version(),
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def try_cache_random_visual(model: torch.nn.Module, model_name: str, seed: int) -> None:
    """:func:`cache_random_visual` unless the file is there; a cache folder that cannot be
    written only costs the next run open_clip's init again (warning)."""
    path = random_visual_cache_path(model_name, seed)
    if path.is_file() and _read_random_visual(path, model_name, seed) is not None:
        return
    try:
        cache_random_visual(model, model_name, seed)
    except OSError as exc:
        warnings.warn(f"{path}: cannot cache the CLIP image tower ({exc})", stacklevel=3)


def _read_random_visual(path: Path, model_name: str, seed: int) -> SafetensorsTensors | None:
    """The cached tensors (read when used), or None when the file is missing, unreadable
    or not the one for (model, seed) (then it is recomputed)."""
    from safetensors import SafetensorError

    if not path.is_file():
        return None
    try:
        state = SafetensorsTensors(path)  # checks the header against the file's size
        meta = state.metadata
        if (meta.get("format"), meta.get("model"), meta.get("seed")) != (
            _RANDOM_CACHE_FORMAT,
            model_name,
            str(seed),
        ):
            return None
        shapes = _shapes(state)
    except (SafetensorError, OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable CLIP cache, recomputing ({exc})", stacklevel=3)
        return None
    from .clip_vision import expected_shapes

    return state if shapes == expected_shapes(_vision_config(model_name)) else None


def _random_visual_state(model_name: str, seed: int) -> Mapping[str, torch.Tensor]:
    """``visual.*`` tensors of ``load_clip(None, model_name, seed=seed)``, from the cache
    (open_clip is imported only to fill it)."""
    path = random_visual_cache_path(model_name, seed)
    state = _read_random_visual(path, model_name, seed)
    if state is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotSemanticWarning)
            model, _, _ = load_clip(None, model_name, "cpu", seed=seed)
        try_cache_random_visual(model, model_name, seed)
        state = _visual_state(model)
    return state


def load_image_tower(
    pretrained: str | Path | None,
    model_name: str = "ViT-B-32",
    device: str | torch.device = "cpu",
    seed: int = RANDOM_SEED,
    dtype: torch.dtype = torch.float32,
) -> tuple[CLIPImageTower, ClipPreprocess]:
    """The image side of :func:`load_clip` without open_clip: ``(tower, preprocess)``.

    Same arguments, weights, ``sseg_model_id`` and errors as :func:`load_clip`; the tower
    is a frozen eval-mode :class:`~sseg.modeling.clip_vision.CLIPImageTower` whose
    ``encode_image`` equals open_clip's, and ``preprocess`` equals open_clip's image
    transform. A local file is read without any random init (only its ``visual.*``
    tensors, verified); ``None`` (seeded random init) reads the cache
    :func:`random_visual_cache_path`, filled with open_clip on first use; an open_clip
    tag goes through :func:`load_clip`. The tower holds its weights in ``dtype``, each
    tensor read and converted in turn (safetensors files); ``tower.weights_fingerprint``
    is the float32 weights' :func:`~sseg.modeling.genres.image_tower_fingerprint`.
    """
    from .clip_vision import PREFIX, CLIPImageTower, ClipPreprocess, expected_shapes

    if _vision_config(model_name) is None:
        raise ValueError(f"no open_clip-free image tower for {model_name!r} (use load_clip)")
    quick_gelu = False
    if pretrained is None:
        _warn_random_weights(model_name)
        state = _random_visual_state(model_name, seed)
        model_id = f"{model_name}:random-seed{seed}"
    elif _is_path(pretrained):
        path = Path(pretrained)
        if not path.is_file():
            raise InputError("CLIP checkpoint file not found", path)
        state, quick_gelu = _read_state_dict(path, prefix=PREFIX)
        _check_state(expected_shapes(_vision_config(model_name, quick_gelu)), set(), state, path)
        model_id = _file_model_id(model_name, path)
    else:  # an open_clip tag: open_clip downloads the weights
        model, _, _ = load_clip(pretrained, model_name, "cpu", seed)
        state = _visual_state(model)
        model_id = model.sseg_model_id
        quick_gelu = type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    cfg = _vision_config(model_name, quick_gelu)
    tower = CLIPImageTower.from_state_dict(state, cfg, model_id, device, dtype)
    return tower, ClipPreprocess(cfg.image_size)
