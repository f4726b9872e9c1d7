"""Batched pseudo-boundary search: the public API and the ``sseg::pseudo_boundaries`` op.

For each sequence of shot embeddings ``x[b, :n]`` and K strictly increasing anchor
shots, choose K-1 boundaries (boundary k = last shot of segment k, in
``[a_k, a_{k+1})``) so that the segments cover ``[0, n)`` and maximise the sum over
segments of the mean (``mode="mean"``; ``"mean_others"`` leaves out the anchor itself) or
total (``mode="sum"``, BaSSL's DTW)
cosine similarity of the segment's shots to its anchor. Ties go to the
lexicographically smallest boundary tuple. Backends: C++/OpenMP (``sseg._dtw_cpu``)
on CPU, a warp-per-sequence CUDA kernel (``sseg._dtw_cuda``, built with
``SSEG_BUILD_CUDA=1``) on GPU, and a vectorised PyTorch reference.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import torch

from .pseudo_boundary_checks import check_finite, check_inputs, check_values
from .pseudo_boundary_reference import reference_impl

__all__ = ["pseudo_boundaries", "pseudo_boundaries_reference"]

_CHUNK_FLOATS = 1 << 26  # low-precision inputs are widened to float32 in chunks this size


def _cpu_extension() -> ModuleType | None:
    try:
        from .. import _dtw_cpu
    except ImportError:
        return None
    return _dtw_cpu


def _cuda_extension() -> ModuleType:
    try:
        from .. import _dtw_cuda
    except ImportError as exc:
        raise RuntimeError(
            "pseudo_boundaries on CUDA needs the sseg._dtw_cuda extension, which is not built; "
            "rebuild on a CUDA machine with `SSEG_BUILD_CUDA=1 pip install --no-build-isolation "
            "-e .` (see docs/pseudo_boundary.md)"
        ) from exc
    return _dtw_cuda


_warned_fallback = False


def _warn_fallback() -> None:
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            "sseg._dtw_cpu is not built; pseudo_boundaries falls back to the slower PyTorch "
            "reference (reinstall sseg to build the C++ extension)",
            RuntimeWarning,
            stacklevel=3,
        )


def _raise_if_flagged(x, anchors, lengths, scores) -> None:
    """Turn the backends' NaN score flags into an :class:`InputError` naming the sequence.

    One host sync (reading the flag) on a GPU; the error path re-checks in detail."""
    if scores.numel() and bool(torch.isnan(scores).any()):
        check_values(anchors, lengths, x.shape[1])  # bad anchors / lengths: named first
        check_finite(scores)


@torch.library.custom_op("sseg::pseudo_boundaries", mutates_args=(), device_types="cpu")
def _pseudo_boundaries_op(
    x: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor, mode: int, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU kernel: the C++ extension on zero-copy numpy views (reference if not built).

    ``check``: raise :class:`InputError` on bad anchors / lengths or non-finite shots. The
    checks live in the op, so they hold inside ``torch.compile``d graphs too. The C++
    extension always rejects bad anchors (it never reads out of range).
    """
    ext = _cpu_extension()
    if ext is None:
        _warn_fallback()
        check_values(anchors, lengths, x.shape[1])  # the reference indexes with them
        bounds, scores = reference_impl(x, anchors, lengths, mode)
    else:
        try:
            bounds, scores = _cpu_search(ext, x, anchors, lengths, mode)
        except ValueError:  # re-check in Python for a message naming the bad sequence
            check_values(anchors, lengths, x.shape[1])
            raise
    if check:
        check_finite(scores)
    return bounds, scores


def _cpu_search(ext, x, anchors, lengths, mode):
    threads = torch.get_num_threads()  # torch.set_num_threads governs the extension too
    anchors_np = anchors.to(torch.int64).contiguous().numpy()
    lengths_np = lengths.to(torch.int64).contiguous().numpy()
    if x.dtype == torch.float32:
        bounds, scores = ext.pseudo_boundaries(
            x.contiguous().numpy(), anchors_np, lengths_np, mode, threads
        )
        return torch.from_numpy(bounds), torch.from_numpy(scores)
    batch, length, dim = x.shape
    step = max(1, _CHUNK_FLOATS // max(1, length * dim))
    bounds = torch.empty((batch, anchors.shape[1] - 1), dtype=torch.int64)
    scores = torch.empty((batch,), dtype=torch.float32)
    for s in range(0, batch, step):
        xb = x[s : s + step].to(torch.float32).contiguous().numpy()
        b, sc = ext.pseudo_boundaries(
            xb, anchors_np[s : s + step], lengths_np[s : s + step], mode, threads
        )
        bounds[s : s + step] = torch.from_numpy(b)
        scores[s : s + step] = torch.from_numpy(sc)
    return bounds, scores


@_pseudo_boundaries_op.register_kernel("cuda")
def _pseudo_boundaries_cuda(
    x: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor, mode: int, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CUDA kernel: one warp per sequence (``csrc/dtw_cuda.cu``), asynchronous on the
    current stream. The kernel validates every sequence itself (bad ones get a NaN score,
    and bounds -1 for bad anchors); ``check`` reads that flag back (one host sync), else
    the call never waits for the GPU."""
    ext = _cuda_extension()
    x = x.to(torch.float32).contiguous()
    anchors = anchors.to(torch.int64).contiguous()
    lengths = lengths.to(torch.int64).contiguous()
    batch, length, dim = x.shape
    k = anchors.shape[1]
    bounds = torch.empty((batch, k - 1), dtype=torch.int64, device=x.device)
    scores = torch.empty((batch,), dtype=torch.float32, device=x.device)
    if batch == 0:
        return bounds, scores
    with torch.cuda.device(x.device):
        need = ext.global_workspace_bytes(batch, length, k)  # 0: shared memory suffices
        work = torch.empty((need,), dtype=torch.uint8, device=x.device) if need else None
        ext.pseudo_boundaries(
            x.data_ptr(),
            anchors.data_ptr(),
            lengths.data_ptr(),
            bounds.data_ptr(),
            scores.data_ptr(),
            0 if work is None else work.data_ptr(),
            batch,
            length,
            dim,
            k,
            mode,
            torch.cuda.current_stream(x.device).cuda_stream,
        )
    if check:
        _raise_if_flagged(x, anchors, lengths, scores)
    return bounds, scores


@_pseudo_boundaries_op.register_fake
def _pseudo_boundaries_fake(
    x: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor, mode: int, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, k = anchors.shape
    bounds = x.new_empty((batch, k - 1), dtype=torch.int64)
    return bounds, x.new_empty((batch,), dtype=torch.float32)


def _setup_context(ctx, inputs, output) -> None:
    ctx.mark_non_differentiable(*output)


def _backward(ctx, grad_bounds, grad_scores):
    return None, None, None, None, None


# Boundaries are indices and the search is a discrete argmax: no gradients flow.
_pseudo_boundaries_op.register_autograd(_backward, setup_context=_setup_context)


def pseudo_boundaries(
    x: torch.Tensor,
    anchors: torch.Tensor,
    lengths: torch.Tensor | None = None,
    mode: str = "mean",
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best pseudo-boundaries per sequence.

    Args:
        x: (B, L, D) shot embeddings, any floating dtype (computed in float32).
        anchors: (B, K) strictly increasing anchor shot indices, 2 <= K <= 16,
            each in ``[0, lengths[b])``.
        lengths: (B,) valid lengths in ``[1, L]`` (default: all L); shots at or
            after a sequence's length are ignored.
        mode: ``"mean"`` (mean cosine per segment), ``"mean_others"`` (the same without
            the anchor's own similarity) or ``"sum"`` (BaSSL DTW).
        check: raise on bad anchors / lengths or NaN/inf shots (inside the op, so also
            under ``torch.compile``; on a GPU this reads one flag back: one host sync).
            ``False`` trusts the inputs and never waits for the GPU (the pre-training hot
            path): a bad sequence then gets a NaN score (and bounds -1 for bad anchors
            on a GPU) instead of an error; the C++ extension still rejects bad anchors.

    Returns:
        ``boundaries`` (B, K-1) int64 with ``anchors[:, k] <= boundaries[:, k] <
        anchors[:, k+1]``, and the optimal ``scores`` (B,) float32.

    Raises:
        ValueError (:class:`sseg.errors.InputError`): bad shapes, dtypes, mode (always,
            no data needed), and with ``check`` bad anchors, lengths, or NaN/inf within a
            sequence's valid shots.
    """
    x, anchors, lengths, code = check_inputs(x, anchors, lengths, mode, values=False)
    return torch.ops.sseg.pseudo_boundaries(x.detach(), anchors, lengths, code, check)


def pseudo_boundaries_reference(
    x: torch.Tensor,
    anchors: torch.Tensor,
    lengths: torch.Tensor | None = None,
    mode: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pseudo_boundaries` in pure PyTorch (vectorised over the batch, any device)."""
    x, anchors, lengths, code = check_inputs(x, anchors, lengths, mode)
    with torch.no_grad():
        bounds, scores = reference_impl(x, anchors, lengths, code)
    check_finite(scores)
    return bounds, scores
