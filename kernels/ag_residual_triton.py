"""Triton kernels, configs and launchers of AG-Residual (see ``ag_residual.py``, which
imports this module on first use and forwards its attributes here)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .ag_residual import NG_PAD

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_QUICK = os.environ.get("SSEG_AUTOTUNE", "full") == "quick"


def _config(bm: int, bk: int, warps: int, stages: int, waves: int) -> triton.Config:
    return triton.Config(
        {"BLOCK_M": bm, "BLOCK_K": bk, "WAVES": waves}, num_warps=warps, num_stages=stages
    )


# (BLOCK_M rows, BLOCK_K feature chunk, warps, pipeline stages, WAVES = at most this many
# programs per SM in a persistent grid, 0 = one program per row block). The interpreter
# gets one small config whose 2-program persistent grid and 32-wide chunks exercise every
# loop; SSEG_AUTOTUNE=quick one config per kernel.
FORWARD_CONFIGS = [
    _config(32, 64, 4, 3, 8),
    _config(64, 64, 4, 3, 4),
    _config(64, 64, 4, 3, 0),
    _config(64, 128, 8, 2, 2),
    _config(128, 64, 8, 2, 2),
    _config(128, 64, 8, 3, 0),
]
BACKWARD_CONFIGS = [
    _config(32, 64, 4, 2, 8),
    _config(64, 64, 4, 2, 4),
    _config(64, 64, 8, 3, 2),
    _config(64, 128, 8, 2, 2),
    _config(128, 64, 8, 2, 1),
]
if _INTERPRET:
    _FORWARD_CONFIGS = _BACKWARD_CONFIGS = [_config(16, 32, 4, 1, 2)]
elif _QUICK:
    _FORWARD_CONFIGS, _BACKWARD_CONFIGS = FORWARD_CONFIGS[1:2], BACKWARD_CONFIGS[1:2]
else:
    _FORWARD_CONFIGS, _BACKWARD_CONFIGS = FORWARD_CONFIGS, BACKWARD_CONFIGS


def shared_memory_estimate(config: triton.Config, element_size: int, backward: bool) -> int:
    """Upper bound of a config's shared memory in bytes: a pipelined V (or dOut) tile and an
    fp32 G tile per stage, plus in the backward an fp32 (BLOCK_M, 32) tile for the
    transposed affinities. ``compile_check`` checks it against ptxas (sm_80 and sm_90:
    1.1-2.3x the real figure)."""
    bm, bk = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_K"]
    staged = config.num_stages * (bm * bk * element_size + NG_PAD * bk * 4)
    return staged + (bm * NG_PAD * 4 if backward else 0)


@dataclass(frozen=True)
class DeviceLimits:
    """What sizes a grid: SMs, shared memory per block / per SM, threads per SM."""

    sms: int
    shared_per_block: int
    shared_per_sm: int
    threads_per_sm: int


# (per-block opt-in, per-SM) shared memory by compute capability, where torch does not say
_SHARED_BY_CC = {(8, 0): (166912, 167936), (8, 6): (101376, 102400), (8, 9): (101376, 102400),
                 (9, 0): (232448, 233472)}  # fmt: skip


@functools.cache
def _cuda_limits(index: int) -> DeviceLimits:
    props = torch.cuda.get_device_properties(index)
    per_block, per_sm = _SHARED_BY_CC.get((props.major, props.minor), (101376, 102400))
    return DeviceLimits(
        sms=props.multi_processor_count,
        shared_per_block=getattr(props, "shared_memory_per_block_optin", 0) or per_block,
        shared_per_sm=getattr(props, "shared_memory_per_multiprocessor", 0) or per_sm,
        threads_per_sm=getattr(props, "max_threads_per_multi_processor", 0) or 2048,
    )


def device_limits(t: torch.Tensor) -> DeviceLimits:
    """Limits of t's GPU; one roomy 'SM' for CPU tensors (interpreter)."""
    if t.is_cuda:
        return _cuda_limits(t.device.index if t.device.index is not None else 0)
    return DeviceLimits(sms=1, shared_per_block=1 << 30, shared_per_sm=1 << 30, threads_per_sm=4096)


def programs_per_sm(config: triton.Config, element_size: int, backward: bool, limits) -> int:
    """Resident programs per SM for a persistent config: its WAVES, capped by shared memory
    and threads per SM (at least 1)."""
    shared = shared_memory_estimate(config, element_size, backward)
    by_shared = limits.shared_per_sm // max(shared, 1)
    by_threads = limits.threads_per_sm // (32 * config.num_warps)
    return max(1, min(config.kwargs["WAVES"], by_shared, by_threads))


def _fits(configs, element_size: int, backward: bool, limits: DeviceLimits):
    fit = [
        c
        for c in configs
        if shared_memory_estimate(c, element_size, backward) <= limits.shared_per_block
    ]
    return fit or [min(configs, key=lambda c: shared_memory_estimate(c, element_size, backward))]


def _prune_forward(configs, nargs, **kwargs):
    v = nargs["v_ptr"]
    return _fits(configs, v.element_size(), False, device_limits(v))


def _prune_backward(configs, nargs, **kwargs):
    v = nargs["v_ptr"]
    return _fits(configs, v.element_size(), True, device_limits(v))


_CONFIG_BY_META = {
    (False, *sorted(c.kwargs.items())): c for c in _FORWARD_CONFIGS
} | {(True, *sorted(c.kwargs.items())): c for c in _BACKWARD_CONFIGS}
# the grid finds a config by its (BLOCK_M, BLOCK_K, WAVES): they must be unique per kernel
assert len(_CONFIG_BY_META) == len(_FORWARD_CONFIGS) + len(_BACKWARD_CONFIGS)


def grid_size(config: triton.Config, rows: int, element_size: int, backward: bool, limits) -> int:
    """Programs launched for ``rows`` output rows: every row block, or a persistent grid of
    :func:`programs_per_sm` programs per SM (never more than there are row blocks)."""
    blocks = triton.cdiv(rows, config.kwargs["BLOCK_M"])
    if config.kwargs["WAVES"] == 0:
        return blocks
    return max(1, min(blocks, programs_per_sm(config, element_size, backward, limits) * limits.sms))


def _grid(rows: int, element_size: int, backward: bool, limits: DeviceLimits):
    def grid(meta):
        key = (backward, *sorted((k, meta[k]) for k in ("BLOCK_K", "BLOCK_M", "WAVES")))
        return (grid_size(_CONFIG_BY_META[key], rows, element_size, backward, limits),)

    return grid


def row_bucket(rows: int) -> int:
    """Autotune key for the row count: the next power of 4 (at least 16)."""
    bucket = 16
    while bucket < rows:
        bucket *= 4
    return bucket


@triton.jit
def _genre_inv_norms(g_ptr, D, gcols, g_ok, NG_PAD: tl.constexpr, BLOCK_K: tl.constexpr):
    """1 / max(|G_j|, 1e-6) for the (padded) genre rows: (NG_PAD,) fp32 (reference EPS)."""
    sq = tl.zeros((NG_PAD,), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        g_mask = g_ok[:, None] & (cols < D)[None, :]
        g = tl.load(g_ptr + gcols[:, None] * D + cols[None, :], mask=g_mask, other=0.0)
        g = g.to(tl.float32)
        sq += tl.sum(g * g, axis=1)
    return 1.0 / tl.maximum(tl.sqrt(sq), 1e-6)


@triton.jit
def _phi(s, g_on, inv_temp, SOFTMAX: tl.constexpr):
    """phi over the genre axis of an fp32 (BLOCK_M, NG_PAD) tile; genres off (masked or
    padding) -> 0."""
    if SOFTMAX:
        s = tl.where(g_on[None, :], s * inv_temp, float("-inf"))
        e = tl.exp(s - tl.max(s, axis=1)[:, None])
        s = e / tl.sum(e, axis=1)[:, None]
    else:
        s = tl.where(g_on[None, :], s, 0.0)
    return s


@triton.jit
def _affinity(
    v_ptr, g_ptr, vrows64, row_ok, stride_v, D, gcols, g_ok, g_on, g_inv, inv_temp,
    SOFTMAX: tl.constexpr, PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    NG_PAD: tl.constexpr,
):  # fmt: skip
    """One pass over V's rows ``vrows64`` in feature chunks: (A = phi(cos), cos, |V|)."""
    dt = v_ptr.dtype.element_ty
    sq = tl.zeros((BLOCK_M,), dtype=tl.float32)
    s = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < D
        v = tl.load(
            v_ptr + vrows64[:, None] * stride_v + cols[None, :],
            mask=row_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        g = tl.load(
            g_ptr + gcols[:, None] * D + cols[None, :],
            mask=g_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        vf = v.to(tl.float32)
        sq += tl.sum(vf * vf, axis=1)
        s = tl.dot(v, tl.trans(g.to(dt)), s, input_precision=PREC)
    raw_norm = tl.sqrt(sq)
    cos = s / tl.maximum(raw_norm, 1e-6)[:, None] * g_inv[None, :]
    return _phi(cos, g_on, inv_temp, SOFTMAX), cos, raw_norm


@triton.autotune(
    configs=_FORWARD_CONFIGS,
    key=["D", "K", "SOFTMAX", "M_BUCKET"],
    prune_configs_by={"early_config_prune": _prune_forward},
)
@triton.jit(do_not_specialize=["N", "N_G", "M_BUCKET"])
def _ag_residual_forward_kernel(
    v_ptr, g_ptr, gw_ptr, on_ptr, out_ptr,
    N, N_G, D, stride_v, stride_out, inv_temp, M_BUCKET,
    K: tl.constexpr, NG_PAD: tl.constexpr, SOFTMAX: tl.constexpr, PREC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, WAVES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    dt = v_ptr.dtype.element_ty
    gcols = tl.arange(0, NG_PAD)
    g_ok = gcols < N_G
    g_on = g_ok & (tl.load(on_ptr + gcols, mask=g_ok, other=0.0) > 0)
    g_inv = _genre_inv_norms(g_ptr, D, gcols, g_ok, NG_PAD, BLOCK_K)

    for block in range(pid, tl.cdiv(N, BLOCK_M), nprog):
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        rows64 = rows.to(tl.int64)
        row_ok = rows < N
        # pass 1 per keyframe: A_k = phi(cos(V_k, G)), summed (V comes from DRAM here)
        a_sum = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
        for kk in tl.static_range(K):
            a, _, _ = _affinity(
                v_ptr, g_ptr, rows64 * K + kk, row_ok, stride_v, D, gcols, g_ok, g_on, g_inv,
                inv_temp, SOFTMAX, PREC, BLOCK_M, BLOCK_K, NG_PAD,
            )  # fmt: skip
            a_sum += a
        a_mean = (a_sum * (1.0 / K)).to(dt)
        # pass 2: out = mean_k V_k + A_mean @ GW (the rows were just read: L1/L2)
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            mask = row_ok[:, None] & col_ok[None, :]
            v_sum = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
            for kk in tl.static_range(K):
                v = tl.load(
                    v_ptr + (rows64 * K + kk)[:, None] * stride_v + cols[None, :],
                    mask=mask,
                    other=0.0,
                )
                v_sum += v.to(tl.float32)
            gw = tl.load(
                gw_ptr + gcols[:, None] * D + cols[None, :],
                mask=g_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            out = v_sum * (1.0 / K) + tl.dot(a_mean, gw.to(dt), input_precision=PREC)
            tl.store(
                out_ptr + rows64[:, None] * stride_out + cols[None, :],
                out.to(out_ptr.dtype.element_ty),
                mask=mask,
            )


@triton.autotune(
    configs=_BACKWARD_CONFIGS,
    key=["D", "K", "SOFTMAX", "NEED_DV", "M_BUCKET"],
    prune_configs_by={"early_config_prune": _prune_backward},
)
@triton.jit(do_not_specialize=["N", "N_G", "M_BUCKET"])
def _ag_residual_backward_kernel(
    v_ptr, g_ptr, gw_ptr, on_ptr, dout_ptr, dv_ptr, dgw_partial_ptr,
    N, N_G, D, stride_v, stride_dout, stride_dv, inv_temp, M_BUCKET,
    K: tl.constexpr, NG_PAD: tl.constexpr, SOFTMAX: tl.constexpr, NEED_DV: tl.constexpr,
    PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, WAVES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    dt = v_ptr.dtype.element_ty
    gcols = tl.arange(0, NG_PAD)
    g_ok = gcols < N_G
    g_on = g_ok & (tl.load(on_ptr + gcols, mask=g_ok, other=0.0) > 0)
    g_inv = _genre_inv_norms(g_ptr, D, gcols, g_ok, NG_PAD, BLOCK_K)
    partial = dgw_partial_ptr + pid.to(tl.int64) * N_G * D  # this program's (N_g, D) slice
    for k0 in range(0, D, BLOCK_K):  # the launcher does not zero the buffer
        cols = k0 + tl.arange(0, BLOCK_K)
        g_mask = g_ok[:, None] & (cols < D)[None, :]
        zero = tl.zeros((NG_PAD, BLOCK_K), dtype=tl.float32)
        tl.store(partial + gcols[:, None] * D + cols[None, :], zero, mask=g_mask)

    for block in range(pid, tl.cdiv(N, BLOCK_M), nprog):
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        rows64 = rows.to(tl.int64)
        row_ok = rows < N
        a_sum = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
        if NEED_DV:
            # dA_k = (dOut / K) @ GW^T, the same for every keyframe of a shot
            da = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
            for k0 in range(0, D, BLOCK_K):
                cols = k0 + tl.arange(0, BLOCK_K)
                col_ok = cols < D
                dout = tl.load(
                    dout_ptr + rows64[:, None] * stride_dout + cols[None, :],
                    mask=row_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                gw = tl.load(
                    gw_ptr + gcols[:, None] * D + cols[None, :],
                    mask=g_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                da = tl.dot(dout, tl.trans(gw.to(dt)), da, input_precision=PREC)
            da = da * (1.0 / K)
        for kk in tl.static_range(K):
            vrows64 = rows64 * K + kk
            a, cos, raw_norm = _affinity(
                v_ptr, g_ptr, vrows64, row_ok, stride_v, D, gcols, g_ok, g_on, g_inv,
                inv_temp, SOFTMAX, PREC, BLOCK_M, BLOCK_K, NG_PAD,
            )  # fmt: skip
            a_sum += a
            if NEED_DV:
                norm = tl.maximum(raw_norm, 1e-6)
                # dS = dA on the genres in use (identity) or A * (dA - sum(dA * A)) / T
                if SOFTMAX:
                    ds = a * (da - tl.sum(da * a, axis=1)[:, None]) * inv_temp
                else:
                    ds = tl.where(g_on[None, :], da, 0.0)
                # n . dn = sum_j dS_j cos_j (dn = dS @ G_hat, n = V / |V|); none below eps
                radial = tl.where(raw_norm > 1e-6, tl.sum(ds * cos, axis=1), 0.0)
                ds_hat = (ds * g_inv[None, :]).to(dt)  # dS @ G_hat == (dS / |G|) @ G
                # dV_k = dOut / K + (dn - n (n . dn)) / |V_k|
                for k0 in range(0, D, BLOCK_K):
                    cols = k0 + tl.arange(0, BLOCK_K)
                    col_ok = cols < D
                    mask = row_ok[:, None] & col_ok[None, :]
                    v = tl.load(
                        v_ptr + vrows64[:, None] * stride_v + cols[None, :], mask=mask, other=0.0
                    )
                    dout = tl.load(
                        dout_ptr + rows64[:, None] * stride_dout + cols[None, :],
                        mask=mask,
                        other=0.0,
                    )
                    g = tl.load(
                        g_ptr + gcols[:, None] * D + cols[None, :],
                        mask=g_ok[:, None] & col_ok[None, :],
                        other=0.0,
                    )
                    dn = tl.dot(ds_hat, g.to(dt), input_precision=PREC)
                    n = v.to(tl.float32) / norm[:, None]
                    tangent = (dn - n * radial[:, None]) / norm[:, None]
                    dv = dout.to(tl.float32) * (1.0 / K) + tangent
                    tl.store(
                        dv_ptr + vrows64[:, None] * stride_dv + cols[None, :],
                        dv.to(dv_ptr.dtype.element_ty),
                        mask=mask,
                    )
        # d(GW) += A_mean^T dOut
        a_t = tl.trans((a_sum * (1.0 / K)).to(dt))
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            g_mask = g_ok[:, None] & col_ok[None, :]
            dout = tl.load(
                dout_ptr + rows64[:, None] * stride_dout + cols[None, :],
                mask=row_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            p_ptrs = partial + gcols[:, None] * D + cols[None, :]
            acc = tl.load(p_ptrs, mask=g_mask, other=0.0)
            acc = tl.dot(a_t, dout, acc, input_precision=PREC)
            tl.store(p_ptrs, acc, mask=g_mask)


def _dot_precision(v: torch.Tensor) -> str:
    """fp16/bf16 feed the tensor cores as given; fp32 uses 3xTF32 (near-fp32 accuracy)."""
    if v.dtype in (torch.float16, torch.bfloat16):
        return "ieee"
    if v.dtype != torch.float32:
        raise TypeError(f"ag_residual Triton path supports fp32/fp16/bf16, got {v.dtype}")
    return "ieee" if (torch.version.hip or not v.is_cuda) else "tf32x3"


def _check(v: torch.Tensor, g: torch.Tensor, gw: torch.Tensor, keyframes: int) -> None:
    if v.ndim != 2 or g.ndim != 2 or gw.shape != g.shape or g.shape[1] != v.shape[1]:
        raise ValueError(
            f"expected v (M, D), g (N_g, D), gw (N_g, D); got {tuple(v.shape)}, "
            f"{tuple(g.shape)}, {tuple(gw.shape)}"
        )
    if not 1 <= g.shape[0] <= NG_PAD:
        raise ValueError(f"need 1..{NG_PAD} genres, got {g.shape[0]}")
    if keyframes < 1 or v.shape[0] % keyframes:
        raise ValueError(f"{v.shape[0]} rows are not whole shots of {keyframes} keyframes")


def _kernel_inputs(v, g, gw, genre_on, keyframes):
    """Checked, row-contiguous inputs; G is normalised and cast inside the kernels."""
    _check(v, g, gw, keyframes)
    prec = _dot_precision(v)
    v = v if v.stride(-1) == 1 else v.contiguous()
    if genre_on is None:
        genre_on = torch.ones(g.shape[0], device=v.device, dtype=torch.float32)
    return v, g.contiguous(), gw.contiguous(), genre_on.float().contiguous(), prec


def ag_residual_forward(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    genre_on: torch.Tensor | None = None,
    phi: str = "identity",
    temperature: float = 1.0,
    keyframes: int = 1,
) -> torch.Tensor:
    """Triton forward: v (N*K, D) (K consecutive keyframe rows per shot), g (N_g, D),
    gw = G @ W (N_g, D), genre_on (N_g,) 1/0 or None -> (N, D), the mean over K."""
    v, g_k, gw_k, on, prec = _kernel_inputs(v, g, gw, genre_on, keyframes)
    n, d = v.shape[0] // keyframes, v.shape[1]
    out = torch.empty((n, d), device=v.device, dtype=v.dtype)
    if n == 0:
        return out
    grid = _grid(n, v.element_size(), False, device_limits(v))
    _ag_residual_forward_kernel[grid](
        v, g_k, gw_k, on, out, n, g.shape[0], d, v.stride(0), out.stride(0),
        1.0 / float(temperature), row_bucket(n),
        K=keyframes, NG_PAD=NG_PAD, SOFTMAX=phi == "softmax", PREC=prec,
    )  # fmt: skip
    return out


def ag_residual_backward(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    grad_out: torch.Tensor,
    genre_on: torch.Tensor | None = None,
    phi: str = "identity",
    temperature: float = 1.0,
    keyframes: int = 1,
    need_dv: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton backward: (dV like v, or an empty (0, D) tensor without ``need_dv``;
    d(GW) like gw)."""
    v, g_k, gw_k, on, prec = _kernel_inputs(v, g, gw, genre_on, keyframes)
    grad_out = grad_out.to(v.dtype)
    grad_out = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
    m, d = v.shape
    n, n_g = m // keyframes, g.shape[0]
    dv = torch.empty((m if need_dv else 0, d), device=v.device, dtype=v.dtype)
    if n == 0:
        return dv, torch.zeros_like(gw)
    limits, elt = device_limits(v), v.element_size()
    most = max(grid_size(c, n, elt, True, limits) for c in _BACKWARD_CONFIGS)
    partial = torch.empty(most, n_g, d, device=v.device, dtype=torch.float32)
    kernel = _ag_residual_backward_kernel
    kernel[_grid(n, elt, True, limits)](
        v, g_k, gw_k, on, grad_out, dv if need_dv else v, partial,
        n, n_g, d, v.stride(0), grad_out.stride(0), dv.stride(0) if need_dv else 0,
        1.0 / float(temperature), row_bucket(n),
        K=keyframes, NG_PAD=NG_PAD, SOFTMAX=phi == "softmax", NEED_DV=need_dv, PREC=prec,
    )  # fmt: skip
    programs = grid_size(kernel.best_config, n, elt, True, limits)  # slices it wrote
    return dv, partial[:programs].sum(0).to(gw.dtype)
