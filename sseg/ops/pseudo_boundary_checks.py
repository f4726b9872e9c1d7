"""Input validation of the pseudo-boundary search, shared by every backend."""

from __future__ import annotations

import torch

from ..errors import InputError

MODES = {"sum": 0, "mean": 1, "mean_others": 2}
MAX_ANCHORS = 16
MAX_LENGTH = 1024


def mode_code(mode: str) -> int:
    """``"sum"`` -> 0, ``"mean"`` -> 1, ``"mean_others"`` -> 2; else an :class:`InputError`."""
    if not isinstance(mode, str) or mode not in MODES:
        expected = ", ".join(repr(m) for m in MODES)
        raise InputError(f"pseudo_boundaries: unknown mode {mode!r}; expected one of {expected}")
    return MODES[mode]


def check_inputs(
    x: torch.Tensor,
    anchors: torch.Tensor,
    lengths: torch.Tensor | None,
    mode: str,
    values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Validates shapes, dtypes and values; returns ``(x, anchors, lengths, mode_code)``.

    ``anchors`` and ``lengths`` come back as int64 tensors on ``x``'s device. Value
    checks (anchor order and range, lengths; see :func:`check_values`) run when
    ``values`` is true and ``torch.compile`` is not tracing (they depend on data).
    NaN/inf in ``x`` is detected by the caller from the scores (a sequence with
    non-finite shots gets a NaN score).
    """
    code = mode_code(mode)
    if not isinstance(x, torch.Tensor) or not isinstance(anchors, torch.Tensor):
        raise InputError("pseudo_boundaries: x and anchors must be torch tensors")
    if x.dim() != 3:
        raise InputError(
            f"pseudo_boundaries: x must be (B, L, D) shot embeddings, got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise InputError(f"pseudo_boundaries: x must be a floating tensor, got dtype {x.dtype}")
    batch, length, dim = x.shape
    if not 1 <= length <= MAX_LENGTH:
        raise InputError(f"pseudo_boundaries: L = {length} must be in [1, {MAX_LENGTH}]")
    if dim < 1:
        raise InputError("pseudo_boundaries: embedding dimension D must be >= 1")
    if anchors.dim() != 2:
        raise InputError(
            f"pseudo_boundaries: anchors must be (B, K) indices, got shape {tuple(anchors.shape)}"
        )
    if anchors.is_floating_point() or anchors.is_complex() or anchors.dtype == torch.bool:
        raise InputError(f"pseudo_boundaries: anchors must be integers, got dtype {anchors.dtype}")
    if anchors.shape[0] != batch:
        raise InputError(
            f"pseudo_boundaries: batch mismatch: x has B = {batch}, anchors {anchors.shape[0]}"
        )
    k = anchors.shape[1]
    if not 2 <= k <= MAX_ANCHORS:
        raise InputError(
            f"pseudo_boundaries: K = {k} anchors per sequence; need 2 <= K <= {MAX_ANCHORS}"
        )
    anchors = anchors.to(device=x.device, dtype=torch.int64)
    if lengths is None:
        lengths = torch.full((batch,), length, dtype=torch.int64, device=x.device)
    else:
        if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1:
            raise InputError("pseudo_boundaries: lengths must be a 1-D tensor of valid lengths")
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise InputError(
                f"pseudo_boundaries: lengths must be integers, got dtype {lengths.dtype}"
            )
        if lengths.shape[0] != batch:
            raise InputError(
                f"pseudo_boundaries: batch mismatch: x has B = {batch}, lengths {lengths.shape[0]}"
            )
        lengths = lengths.to(device=x.device, dtype=torch.int64)
    if values:
        check_values(anchors, lengths, length)
    return x, anchors.contiguous(), lengths.contiguous(), code


def _first_bad(mask: torch.Tensor) -> int:
    return int(mask.nonzero()[0, 0])


def check_values(anchors: torch.Tensor, lengths: torch.Tensor, length: int) -> None:
    """Raises an :class:`InputError` naming the first bad sequence, if any."""
    if anchors.shape[0] == 0 or torch.compiler.is_compiling():
        return
    bad = (lengths < 1) | (lengths > length)
    if bool(bad.any()):
        i = _first_bad(bad)
        raise InputError(
            f"pseudo_boundaries: lengths[{i}] = {int(lengths[i])} is outside [1, L = {length}]"
        )
    bad = (anchors[:, 1:] <= anchors[:, :-1]).any(dim=1)
    if bool(bad.any()):
        i = _first_bad(bad)
        raise InputError(
            f"pseudo_boundaries: anchors[{i}] = {anchors[i].tolist()} are not strictly increasing"
        )
    bad = (anchors[:, 0] < 0) | (anchors[:, -1] >= lengths)
    if bool(bad.any()):
        i = _first_bad(bad)
        raise InputError(
            f"pseudo_boundaries: anchors[{i}] = {anchors[i].tolist()} fall outside the valid "
            f"shots [0, {int(lengths[i])})"
        )


def check_finite(scores: torch.Tensor) -> None:
    """Raises when a backend flagged non-finite shots (NaN score) in some sequence."""
    if torch.compiler.is_compiling() or scores.numel() == 0:
        return
    bad = torch.isnan(scores)
    if bool(bad.any()):
        i = _first_bad(bad)
        raise InputError(
            f"pseudo_boundaries: x[{i}] has NaN/inf (or float32-overflowing) values within its "
            "valid length"
        )
