"""Import shim that lets torchvision import beside a CPU-only torch build.

When torchvision's compiled ops cannot load (its wheel was built against another
torch), ``import torchvision`` fails with "operator torchvision::nms does not
exist": its fake-tensor registrations expect the ops to be defined. We define
the two schemas it registers unconditionally (``nms``, ``qnms``) without any
kernel, so importing works; calling those two ops still raises a clear
"no kernel" error. sseg never uses them (open_clip only needs transforms).
"""

from __future__ import annotations

import importlib
import sys
import warnings

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_fragment = None  # keeps the torch.library fragment alive for the process


def _op_exists(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def ensure_torchvision() -> None:
    """Import torchvision, defining the missing op schemas first if needed."""
    global _fragment
    if "torchvision" in sys.modules:
        return
    import torch

    try:
        importlib.import_module("torchvision.extension")
    except Exception:  # noqa: BLE001 - any failure here is handled by the retry below
        sys.modules.pop("torchvision", None)
        sys.modules.pop("torchvision.extension", None)
    missing = [name for name in _SCHEMAS if not _op_exists(name)]
    if missing:
        _fragment = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901
        for name in missing:
            _fragment.define(_SCHEMAS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module("torchvision")


def import_open_clip():
    """Import and return ``open_clip`` after the torchvision shim."""
    ensure_torchvision()
    import open_clip

    return open_clip
