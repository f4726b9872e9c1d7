"""Export the scene model: a ``torch.export`` program or an AOTInductor package.

The exported unit is :class:`~sseg.deploy.windows.WindowScorer`: AG-Residual on each
keyframe, the mean over a shot's keyframes, the context transformer and the boundary
head, then a sigmoid. Its inputs are ``keyframes (B, W, K, D)`` float32 and ``valid
(B, W)`` bool, with the batch ``B`` dynamic (1..``max_batch``) and ``W, K, D`` fixed;
its output is ``(B,)`` float32 probabilities.

Two file kinds, both ``.pt2`` zip archives carrying the same JSON description
(:data:`METADATA_KEY`: format, window, keyframes, dim, device, AG-Residual backend,
model config):

* ``program``: :func:`torch.export.save` of the :class:`~torch.export.ExportedProgram`
  (graph as JSON, weights as raw bytes); runs through the PyTorch interpreter of the
  graph, on its export device or moved to another one when loaded.
* ``aoti``: :func:`torch._inductor.aoti_compile_and_package`, the same program compiled
  ahead of time by Inductor into a shared library (C++ on CPU; C++ + Triton on CUDA).
  Needs a C++ compiler at packaging time; runs only on the device it was built for.

The AG-Residual step traces as plain ATen ops with the reference backend (CPU default)
and as the opaque custom op ``torch.ops.sseg.ag_residual`` with the Triton backend
(CUDA default). A program holding the custom op needs ``sseg.kernels`` imported where
it runs (:func:`load_scorer` does that); AOTInductor calls it back through PyTorch's
dispatcher. ``ag_backend="reference"`` exports pure ATen instead, which Inductor then
fuses itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import InputError
from ..modeling.model import SceneModel
from .windows import WindowScorer

FORMAT = "sseg.exported_scene_model.v1"
METADATA_KEY = "sseg.json"
KINDS = ("program", "aoti")
AG_BACKENDS = ("auto", "reference", "triton")
DEFAULT_MAX_BATCH = 4096


@contextlib.contextmanager
def _ag_backend(backend: str) -> Iterator[None]:
    """Force the AG-Residual dispatch (``$SSEG_AG_BACKEND``) while a model is traced."""
    if backend not in AG_BACKENDS:
        raise ValueError(f"ag_backend must be one of {AG_BACKENDS}, got {backend!r}")
    before = os.environ.get("SSEG_AG_BACKEND")
    os.environ["SSEG_AG_BACKEND"] = backend
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SSEG_AG_BACKEND", None)
        else:
            os.environ["SSEG_AG_BACKEND"] = before


def export_scene_model(
    model: SceneModel,
    keyframes: int = 3,
    max_batch: int = DEFAULT_MAX_BATCH,
    ag_backend: str = "auto",
) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """Trace ``model`` (on its current device) into an exported window program.

    Returns the program and its JSON-able description (the file metadata).
    """
    if keyframes < 1 or max_batch < 2:
        raise ValueError("keyframes must be >= 1 and max_batch >= 2")
    scorer = WindowScorer(model)
    device = scorer.device
    # Batch 2 in the example: torch.export specialises sizes 0 and 1.
    example = (
        torch.zeros(2, scorer.window, keyframes, scorer.dim, device=device),
        torch.ones(2, scorer.window, dtype=torch.bool, device=device),
    )
    batch = torch.export.Dim("windows", min=1, max=max_batch)
    with torch.no_grad(), _ag_backend(ag_backend):
        program = torch.export.export(
            scorer, example, dynamic_shapes={"keyframes": {0: batch}, "valid": {0: batch}}
        )
    custom = sorted({str(n.target) for n in program.graph.nodes if "sseg." in str(n.target)})
    meta = {
        "format": FORMAT,
        "window": scorer.window,
        "keyframes": keyframes,
        "dim": scorer.dim,
        "max_batch": max_batch,
        "device": device.type,
        "ag_backend": ag_backend,
        "custom_ops": custom,
        "torch": torch.__version__,
        "model": model.config(),
    }
    return program, meta


def save_program(
    program: torch.export.ExportedProgram, meta: dict[str, Any], path: str | Path
) -> Path:
    """Atomically write an exported program (kind ``program``) with its description."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.export.save(
            program, handle, extra_files={METADATA_KEY: json.dumps({**meta, "kind": "program"})}
        )
    return path


def save_aoti(
    program: torch.export.ExportedProgram, meta: dict[str, Any], path: str | Path
) -> Path:
    """Compile with AOTInductor and atomically write the package (kind ``aoti``)."""
    from torch._inductor import aoti_compile_and_package

    path = Path(path)
    config = {"aot_inductor.metadata": {METADATA_KEY: json.dumps({**meta, "kind": "aoti"})}}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        aoti_compile_and_package(program, package_path=handle, inductor_configs=config)
    return path


def export_to_file(
    model: SceneModel,
    path: str | Path,
    kind: str = "program",
    keyframes: int = 3,
    max_batch: int = DEFAULT_MAX_BATCH,
    ag_backend: str = "auto",
) -> dict[str, Any]:
    """Export ``model`` to ``path`` as ``kind`` ("program" or "aoti"); returns the metadata."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    program, meta = export_scene_model(model, keyframes, max_batch, ag_backend)
    (save_aoti if kind == "aoti" else save_program)(program, meta, path)
    return {**meta, "kind": kind}


class ExportedScorer:
    """A loaded exported program or AOTInductor package, used like a :class:`WindowScorer`.

    Batches larger than the exported ``max_batch`` are scored in chunks.
    """

    def __init__(self, run, meta: dict[str, Any], device: torch.device, path: Path):
        self._run = run
        self.meta = meta
        self.kind: str = meta["kind"]
        self.window: int = meta["window"]
        self.keyframes: int = meta["keyframes"]
        self.dim: int = meta["dim"]
        self.max_batch: int = meta["max_batch"]
        self.device = device
        self.path = path

    def __call__(self, keyframes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, W, K, D) keyframes, (B, W) bool -> (B,) float32 probabilities."""
        expected = (self.window, self.keyframes, self.dim)
        if keyframes.ndim != 4 or tuple(keyframes.shape[1:]) != expected:
            raise ValueError(
                f"{self.path}: keyframe windows must be (B, {', '.join(map(str, expected))}), "
                f"got {tuple(keyframes.shape)}"
            )
        if tuple(valid.shape) != tuple(keyframes.shape[:2]):
            raise ValueError(f"{self.path}: valid must be {tuple(keyframes.shape[:2])}")
        keyframes = keyframes.to(self.device, torch.float32)
        valid = valid.to(self.device, torch.bool)
        with torch.no_grad():
            parts = [
                self._run(keyframes[i : i + self.max_batch], valid[i : i + self.max_batch])
                for i in range(0, keyframes.shape[0], self.max_batch)
            ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _archive_kind(path: Path) -> str:
    """Kind of an exported archive, program or aoti, from its members; InputError if neither."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"not an exported sseg model ({exc})", path) from exc
    if any("/data/aotinductor/" in f"/{name}" for name in names):
        return "aoti"
    if any(name.endswith("models/model.json") for name in names):
        return "program"
    raise InputError("not an exported sseg model (neither a torch.export program nor an "
                     "AOTInductor package)", path)  # fmt: skip


def _check_meta(meta: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    if not meta or meta.get("format") != FORMAT:
        found = None if not meta else meta.get("format")
        raise InputError(f"not an exported sseg scene model (format={found!r})", path)
    return meta


def load_scorer(path: str | Path, device: str | torch.device | None = None) -> ExportedScorer:
    """Load a file written by :func:`export_to_file`.

    ``device`` defaults to the export device. A ``program`` exported on one device can
    be moved to another; an ``aoti`` package runs only where it was compiled.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("exported model not found", path)
    kind = _archive_kind(path)
    from .. import kernels  # noqa: F401 - registers torch.ops.sseg.* used by the graph

    if kind == "aoti":
        from torch._inductor import aoti_load_package

        target = torch.device(device) if device is not None else None
        index = -1 if target is None or target.index is None else target.index
        try:
            runner = aoti_load_package(str(path), device_index=index)
            stored = runner.get_metadata().get(METADATA_KEY)
        except (RuntimeError, OSError) as exc:
            raise InputError(f"cannot load the AOTInductor package ({exc})", path) from exc
        meta = _check_meta(json.loads(stored) if stored else None, path)
        target = target or torch.device(meta["device"])
        if target.type != meta["device"]:
            raise InputError(
                f"AOTInductor package built for {meta['device']}, cannot run on {target.type}",
                path,
            )
        return ExportedScorer(runner, meta, target, path)
    extra = {METADATA_KEY: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot load the exported program ({exc})", path) from exc
    meta = _check_meta(json.loads(extra[METADATA_KEY]) if extra[METADATA_KEY] else None, path)
    target = torch.device(device or meta["device"])
    if target.type != meta["device"]:
        program = torch.export.passes.move_to_device_pass(program, target)
    return ExportedScorer(program.module(), meta, target, path)
