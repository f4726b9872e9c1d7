"""Load the frozen CLIP backbone (open_clip) from nothing, open_clip's tag, or a local file.

``load_clip(None)`` builds a seeded random-init model (deterministic, not semantic: for
tests and smoke runs). ``load_clip("openai")`` uses open_clip's own download. A local
``.safetensors`` / ``.pt`` / ``.bin`` file holding an open_clip or OpenAI (JIT-free)
CLIP state dict is loaded with ``weights_only=True`` and its keys verified.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import torch

from ._compat import import_open_clip
from .errors import InputError, SsegError

RANDOM_SEED = 0
# keys an OpenAI CLIP state dict carries beside the weights
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_SUFFIXES = (".safetensors", ".pt", ".bin", ".pth")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


class NotSemanticWarning(UserWarning):
    """The backbone has random weights: features carry no visual meaning."""


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


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """(state dict, is_openai_format); OpenAI's own dicts carry ``input_resolution``.

    The file's content, not its suffix, picks the reader: safetensors, or torch.load with
    ``weights_only=True`` (tensors and plain containers only; nothing else is unpickled).
    """
    from .checkpoint import SAFETENSORS, TORCHSCRIPT, UNKNOWN, one_line, weights_file_kind

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
                from safetensors.torch import load_file

                state = load_file(str(path))
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
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("not a CLIP state dict (expected a mapping of names to tensors)", path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    openai_format = "input_resolution" in state
    return {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS}, openai_format


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    # buffers that are derived, not learned (e.g. the causal attention mask)
    derived = {name for name, _ in model.named_buffers()}
    missing = sorted(set(expected) - set(state) - derived)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"checkpoint does not match the model: {len(missing)} missing keys "
            f"{missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]}",
            path,
        )
    bad = [k for k, v in state.items() if v.shape != expected[k].shape]
    if bad:
        k = bad[0]
        raise InputError(
            f"checkpoint shapes do not match the model: {len(bad)} tensors differ, e.g. "
            f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}",
            path,
        )
    model.load_state_dict(state, strict=False)


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
        warnings.warn(
            f"{model_name} has random weights (pretrained=None): features are not semantic; "
            "pass a checkpoint path for real use",
            NotSemanticWarning,
            stacklevel=2,
        )
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
        stat = path.stat()
        model_id = f"{model_name}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
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
