"""AG-Residual genre prior, fused in Triton: out = V + phi(cos(V, G)) @ (G @ W).

Layout (Liger-Kernel style, one file per op):

* ``_ag_residual_forward_kernel``: programs take blocks of ``BLOCK_M`` token rows (one
  block each, or a persistent loop; autotuned). Pass 1 over ``BLOCK_K`` feature chunks
  accumulates |V| and V @ G^T on the tensor cores; A = phi(cos) stays in registers; pass 2
  writes out = V + A @ GW chunk by chunk. V comes from DRAM once (pass 2 re-reads the row
  block just read, from L1/L2) and out is written once. G (N_g <= 32 genres) is
  normalised in-kernel and padded to 32 rows by masking. Chunking keeps on-chip memory
  small for any D and dtype (a whole-row tile of fp32 D=512 needs > 228 KB of shared
  memory on sm_90).
* ``_ag_residual_backward_kernel``: a persistent grid; each program walks row blocks with
  the same two passes (pass 1 also forms dA = dOut @ GW^T; pass 2 writes dV) and adds
  A^T dOut into its own (N_g, D) fp32 slice of a partial buffer (L2-resident, no atomics);
  the launcher sums the slices (dW = G^T d(GW) follows by autograd).
* launchers ``ag_residual_forward`` / ``ag_residual_backward``; ``AGResidualFunction``
  (``torch.autograd.Function``); the custom op ``torch.ops.sseg.ag_residual`` (with
  ``register_fake`` + ``register_autograd``, so it works under ``torch.compile``);
  :func:`ag_residual` (dispatch) and the :class:`AGResidual` module.

Dispatch: CUDA tensors use Triton, CPU tensors use the PyTorch reference
(``ag_residual_ref.py``, also the test oracle). ``backend="triton"`` or the environment
variable ``SSEG_AG_BACKEND=triton`` forces Triton (on CPU tensors it needs
``TRITON_INTERPRET=1``); ``backend="reference"`` forces the reference.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import nn

from .ag_residual_ref import PHI_CHOICES, ag_residual_reference

NG_PAD = 32  # genre rows held per program; N_g must not exceed it
BACKENDS = ("auto", "triton", "reference")
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _config(bm: int, bk: int, warps: int, waves: int = 0) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BLOCK_K": bk, "WAVES": waves}, num_warps=warps)


# (BLOCK_M rows, BLOCK_K feature chunk, warps, WAVES = programs per SM of a persistent grid
# or 0 for one program per row block). The interpreter gets one small config whose 2-program
# persistent grid and 32-wide chunks exercise both loops.
# SSEG_AUTOTUNE=quick (bench/gpu_run.sh's tests): one config per kernel, no tuning.
_QUICK = os.environ.get("SSEG_AUTOTUNE", "full") == "quick"
if _INTERPRET:
    _FORWARD_CONFIGS = _BACKWARD_CONFIGS = [_config(16, 32, 4, waves=2)]
elif _QUICK:
    _FORWARD_CONFIGS = [_config(64, 64, 4, waves=4)]
    _BACKWARD_CONFIGS = [_config(64, 64, 8)]
else:
    _FORWARD_CONFIGS = [
        _config(bm, bk, w, wv)
        for bm, bk, w in ((32, 64, 4), (64, 64, 4), (64, 128, 8), (128, 64, 8))
        for wv in (0, 4)
    ]
    _BACKWARD_CONFIGS = [
        _config(bm, bk, w) for bm, bk, w in ((32, 64, 4), (64, 64, 8), (64, 128, 8), (128, 64, 8))
    ]


def _num_sms(t: torch.Tensor) -> int:
    """Streaming multiprocessors of t's GPU; 1 for CPU tensors (interpreter)."""
    if t.is_cuda:
        return torch.cuda.get_device_properties(t.device).multi_processor_count
    return 1


def _grid(m: int, sms: int):
    """Grid for the forward: every row block, or WAVES programs per SM looping over them."""

    def grid(meta):
        blocks = triton.cdiv(m, meta["BLOCK_M"])
        return (blocks if meta["WAVES"] == 0 else max(1, min(blocks, meta["WAVES"] * sms)),)

    return grid


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
def _phi(s, gcols, inv_temp, N_G: tl.constexpr, SOFTMAX: tl.constexpr):
    """phi over the genre axis of an fp32 (BLOCK_M, NG_PAD) tile; padded genres -> 0."""
    if SOFTMAX:
        s = tl.where((gcols < N_G)[None, :], s * inv_temp, float("-inf"))
        e = tl.exp(s - tl.max(s, axis=1)[:, None])
        s = e / tl.sum(e, axis=1)[:, None]
    return s


@triton.autotune(configs=_FORWARD_CONFIGS, key=["D", "N_G", "SOFTMAX"])
@triton.jit
def _ag_residual_forward_kernel(
    v_ptr,
    g_ptr,
    gw_ptr,
    out_ptr,
    M,
    D,
    stride_v,
    stride_out,
    inv_temp,
    N_G: tl.constexpr,
    NG_PAD: tl.constexpr,
    SOFTMAX: tl.constexpr,
    PREC: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    WAVES: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    dt = v_ptr.dtype.element_ty
    gcols = tl.arange(0, NG_PAD)
    g_ok = gcols < N_G
    g_inv = _genre_inv_norms(g_ptr, D, gcols, g_ok, NG_PAD, BLOCK_K)

    for block in range(pid, tl.cdiv(M, BLOCK_M), nprog):
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        rows64 = rows.to(tl.int64)
        row_ok = rows < M
        # pass 1 over feature chunks: |V| and V @ G^T (V comes from DRAM here)
        sq = tl.zeros((BLOCK_M,), dtype=tl.float32)
        s = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            v = tl.load(
                v_ptr + rows64[:, None] * stride_v + cols[None, :],
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
        norm = tl.maximum(tl.sqrt(sq), 1e-6)
        a = _phi(s / norm[:, None] * g_inv[None, :], gcols, inv_temp, N_G, SOFTMAX).to(dt)
        # pass 2: out = V + A @ GW (the row block was just read: served from L1/L2)
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            mask = row_ok[:, None] & col_ok[None, :]
            v = tl.load(v_ptr + rows64[:, None] * stride_v + cols[None, :], mask=mask, other=0.0)
            gw = tl.load(
                gw_ptr + gcols[:, None] * D + cols[None, :],
                mask=g_ok[:, None] & col_ok[None, :],
                other=0.0,
            )
            out = v.to(tl.float32) + tl.dot(a, gw.to(dt), input_precision=PREC)
            tl.store(
                out_ptr + rows64[:, None] * stride_out + cols[None, :],
                out.to(out_ptr.dtype.element_ty),
                mask=mask,
            )


@triton.autotune(
    configs=_BACKWARD_CONFIGS, key=["D", "N_G", "SOFTMAX"], reset_to_zero=["dgw_partial_ptr"]
)
@triton.jit
def _ag_residual_backward_kernel(
    v_ptr,
    g_ptr,
    gw_ptr,
    dout_ptr,
    dv_ptr,
    dgw_partial_ptr,
    M,
    D,
    stride_v,
    stride_dout,
    stride_dv,
    inv_temp,
    N_G: tl.constexpr,
    NG_PAD: tl.constexpr,
    SOFTMAX: tl.constexpr,
    PREC: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    WAVES: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    dt = v_ptr.dtype.element_ty
    gcols = tl.arange(0, NG_PAD)
    g_ok = gcols < N_G
    g_inv = _genre_inv_norms(g_ptr, D, gcols, g_ok, NG_PAD, BLOCK_K)
    partial = dgw_partial_ptr + pid.to(tl.int64) * N_G * D  # this program's own (N_g, D) slice

    for block in range(pid, tl.cdiv(M, BLOCK_M), nprog):
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        rows64 = rows.to(tl.int64)
        row_ok = rows < M
        # pass 1: |V|, V @ G^T and dA = dOut @ GW^T
        sq = tl.zeros((BLOCK_M,), dtype=tl.float32)
        s = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
        da = tl.zeros((BLOCK_M, NG_PAD), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            mask = row_ok[:, None] & col_ok[None, :]
            g_mask = g_ok[:, None] & col_ok[None, :]
            v = tl.load(v_ptr + rows64[:, None] * stride_v + cols[None, :], mask=mask, other=0.0)
            dout = tl.load(
                dout_ptr + rows64[:, None] * stride_dout + cols[None, :], mask=mask, other=0.0
            )
            g = tl.load(g_ptr + gcols[:, None] * D + cols[None, :], mask=g_mask, other=0.0)
            gw = tl.load(gw_ptr + gcols[:, None] * D + cols[None, :], mask=g_mask, other=0.0)
            vf = v.to(tl.float32)
            sq += tl.sum(vf * vf, axis=1)
            s = tl.dot(v, tl.trans(g.to(dt)), s, input_precision=PREC)
            da = tl.dot(dout, tl.trans(gw.to(dt)), da, input_precision=PREC)
        raw_norm = tl.sqrt(sq)
        norm = tl.maximum(raw_norm, 1e-6)
        s = s / norm[:, None] * g_inv[None, :]  # S = cos(V, G)
        a = _phi(s, gcols, inv_temp, N_G, SOFTMAX)
        # dS = dA (identity) or A * (dA - sum(dA * A)) / T (softmax)
        ds = da
        if SOFTMAX:
            ds = a * (da - tl.sum(da * a, axis=1)[:, None]) * inv_temp
        # n . dn = sum_j dS_j S_j (dn = dS @ G_hat, n = V / |V|); no radial term below eps
        radial = tl.where(raw_norm > 1e-6, tl.sum(ds * s, axis=1), 0.0)
        ds_hat = (ds * g_inv[None, :]).to(dt)  # dS @ G_hat == (dS / |G|) @ G
        a_t = tl.trans(a.to(dt))
        # pass 2: dV = dOut + (dn - n (n . dn)) / |V|, and d(GW) += A^T dOut
        for k0 in range(0, D, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_ok = cols < D
            mask = row_ok[:, None] & col_ok[None, :]
            g_mask = g_ok[:, None] & col_ok[None, :]
            v = tl.load(v_ptr + rows64[:, None] * stride_v + cols[None, :], mask=mask, other=0.0)
            dout = tl.load(
                dout_ptr + rows64[:, None] * stride_dout + cols[None, :], mask=mask, other=0.0
            )
            g = tl.load(g_ptr + gcols[:, None] * D + cols[None, :], mask=g_mask, other=0.0)
            dn = tl.dot(ds_hat, g.to(dt), input_precision=PREC)
            n = v.to(tl.float32) / norm[:, None]
            dv = dout.to(tl.float32) + (dn - n * radial[:, None]) / norm[:, None]
            tl.store(
                dv_ptr + rows64[:, None] * stride_dv + cols[None, :],
                dv.to(dv_ptr.dtype.element_ty),
                mask=mask,
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


def _check(v: torch.Tensor, g: torch.Tensor, gw: torch.Tensor) -> None:
    if v.ndim != 2 or g.ndim != 2 or gw.shape != g.shape or g.shape[1] != v.shape[1]:
        raise ValueError(
            f"expected v (M, D), g (N_g, D), gw (N_g, D); got {tuple(v.shape)}, "
            f"{tuple(g.shape)}, {tuple(gw.shape)}"
        )
    if not 1 <= g.shape[0] <= NG_PAD:
        raise ValueError(f"need 1..{NG_PAD} genres, got {g.shape[0]}")


def _kernel_inputs(
    v: torch.Tensor, g: torch.Tensor, gw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Checked, row-contiguous inputs; G is normalised and cast inside the kernels."""
    _check(v, g, gw)
    prec = _dot_precision(v)
    v = v if v.stride(-1) == 1 else v.contiguous()
    return v, g.contiguous(), gw.contiguous(), prec


def ag_residual_forward(
    v: torch.Tensor, g: torch.Tensor, gw: torch.Tensor, phi: str = "identity", temperature=1.0
) -> torch.Tensor:
    """Triton forward launcher: v (M, D), g (N_g, D), gw = G @ W (N_g, D) -> (M, D)."""
    v, g_k, gw_k, prec = _kernel_inputs(v, g, gw)
    m, d = v.shape
    out = torch.empty_like(v, memory_format=torch.contiguous_format)
    if m == 0:
        return out
    _ag_residual_forward_kernel[_grid(m, _num_sms(v))](
        v,
        g_k,
        gw_k,
        out,
        m,
        d,
        v.stride(0),
        out.stride(0),
        1.0 / float(temperature),
        N_G=g.shape[0],
        NG_PAD=NG_PAD,
        SOFTMAX=phi == "softmax",
        PREC=prec,
    )
    return out


def _backward_programs(v: torch.Tensor, m: int) -> int:
    """Persistent backward grid: 2 programs per SM (2 in the interpreter), at most 1 per block."""
    return max(1, min(triton.cdiv(m, 16), 2 * _num_sms(v)))


def ag_residual_backward(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    grad_out: torch.Tensor,
    phi: str = "identity",
    temperature=1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton backward launcher: returns (dV like v, d(GW) like gw)."""
    v, g_k, gw_k, prec = _kernel_inputs(v, g, gw)
    grad_out = grad_out.to(v.dtype)
    grad_out = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
    m, d = v.shape
    n_g = g.shape[0]
    dv = torch.empty_like(v, memory_format=torch.contiguous_format)
    if m == 0:
        return dv, torch.zeros_like(gw)
    programs = _backward_programs(v, m)
    partial = torch.zeros(programs, n_g, d, device=v.device, dtype=torch.float32)
    _ag_residual_backward_kernel[(programs,)](
        v,
        g_k,
        gw_k,
        grad_out,
        dv,
        partial,
        m,
        d,
        v.stride(0),
        grad_out.stride(0),
        dv.stride(0),
        1.0 / float(temperature),
        N_G=n_g,
        NG_PAD=NG_PAD,
        SOFTMAX=phi == "softmax",
        PREC=prec,
    )
    return dv, partial.sum(0).to(gw.dtype)


class AGResidualFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton launchers (gradients for V and GW; G is frozen)."""

    @staticmethod
    def forward(ctx, v, g, gw, phi: str = "identity", temperature: float = 1.0):
        ctx.save_for_backward(v, g, gw)
        ctx.phi, ctx.temperature = phi, temperature
        return ag_residual_forward(v, g, gw, phi, temperature)

    @staticmethod
    def backward(ctx, grad_out):
        v, g, gw = ctx.saved_tensors
        dv, dgw = ag_residual_backward(v, g, gw, grad_out, ctx.phi, ctx.temperature)
        return dv, None, dgw, None, None


# --- torch.library custom op: opaque to torch.compile, differentiable via register_autograd


@torch.library.custom_op("sseg::ag_residual", mutates_args=())
def ag_residual_op(
    v: torch.Tensor, g: torch.Tensor, gw: torch.Tensor, phi: str, temperature: float
) -> torch.Tensor:
    """Triton forward as a custom op (``torch.ops.sseg.ag_residual``)."""
    return ag_residual_forward(v, g, gw, phi, temperature)


@ag_residual_op.register_fake
def _(v, g, gw, phi, temperature):
    return torch.empty_like(v, memory_format=torch.contiguous_format)


@torch.library.custom_op("sseg::ag_residual_backward", mutates_args=())
def ag_residual_backward_op(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    grad_out: torch.Tensor,
    phi: str,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton backward as a custom op: (dV, d(GW))."""
    return ag_residual_backward(v, g, gw, grad_out, phi, temperature)


@ag_residual_backward_op.register_fake
def _(v, g, gw, grad_out, phi, temperature):
    return torch.empty_like(v, memory_format=torch.contiguous_format), torch.empty_like(gw)


def _setup_context(ctx, inputs, output):
    v, g, gw, phi, temperature = inputs
    ctx.save_for_backward(v, g, gw)
    ctx.phi, ctx.temperature = phi, temperature


def _backward(ctx, grad_out):
    v, g, gw = ctx.saved_tensors
    dv, dgw = ag_residual_backward_op(v, g, gw, grad_out, ctx.phi, ctx.temperature)
    return dv, None, dgw, None, None


ag_residual_op.register_autograd(_backward, setup_context=_setup_context)


def resolve_backend(v: torch.Tensor, backend: str | None = None) -> str:
    """ "triton" or "reference": explicit argument, else $SSEG_AG_BACKEND, else by device."""
    choice = backend or os.environ.get("SSEG_AG_BACKEND", "auto")
    if choice not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {choice!r}")
    if choice == "auto":
        return "triton" if v.is_cuda else "reference"
    return choice


def triton_unsupported(v: torch.Tensor, g: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot run these inputs, or None if they can."""
    if v.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"dtype {v.dtype} (supported: float32, float16, bfloat16)"
    if not 1 <= g.shape[0] <= NG_PAD:
        return f"{g.shape[0]} genres (supported: 1..{NG_PAD})"
    if g.requires_grad:
        return "the genre bank requires grad (the kernels differentiate V and W only)"
    return None


def ag_residual(
    v: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    backend: str | None = None,
) -> torch.Tensor:
    """Apply the genre residual to token rows ``v`` (..., D); returns v's shape and dtype.

    ``G @ W`` is formed once per call (a tiny (N_g, D) x (D, D) matmul). Where the kernels
    do not apply (see :func:`triton_unsupported`) automatic dispatch uses the reference and
    a forced ``"triton"`` backend raises ``ValueError``.
    """
    if phi not in PHI_CHOICES:
        raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
    shape = v.shape
    rows = v.reshape(-1, shape[-1])
    gw = g.to(w.dtype) @ w
    use_triton = resolve_backend(v, backend) == "triton"
    if use_triton:
        reason = triton_unsupported(v, g)
        if reason and (backend or os.environ.get("SSEG_AG_BACKEND", "auto")) == "triton":
            raise ValueError(f"ag_residual Triton backend: {reason}")
        use_triton = reason is None
    if use_triton:
        out = ag_residual_op(rows, g, gw, phi, float(temperature))
    else:
        out = ag_residual_reference(rows, g, gw, phi, temperature)
    return out.reshape(shape)


def ag_residual_shot_mean(
    v: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    backend: str | None = None,
) -> torch.Tensor:
    """Mean over the keyframe axis of :func:`ag_residual`: v (..., K, D) -> (..., D)."""
    return ag_residual(v, g, w, phi, temperature, backend).mean(dim=-2)


class AGResidual(nn.Module):
    """Genre-prior residual with a frozen genre bank G and a trainable W (zero init = identity).

    ``forward(v, genre_mask=None)``: an optional (N_g,) bool mask restricts G to the genres
    a video's metadata lists (see :func:`sseg.genres.genre_mask`); an all-False or absent
    mask uses every genre.
    """

    def __init__(
        self,
        genre_embeddings: torch.Tensor,
        phi: str = "identity",
        temperature: float = 1.0,
        backend: str | None = None,
    ):
        super().__init__()
        if genre_embeddings.ndim != 2:
            raise ValueError("genre_embeddings must be (N_g, D)")
        if phi not in PHI_CHOICES:
            raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        dim = genre_embeddings.shape[1]
        self.register_buffer("genres", genre_embeddings.detach().float().clone())
        self.weight = nn.Parameter(torch.zeros(dim, dim))
        self.phi = phi
        self.temperature = temperature
        self.backend = backend

    def forward(self, v: torch.Tensor, genre_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(..., D) -> (..., D)."""
        g, w = self.genres, self.weight
        if genre_mask is not None:
            genre_mask = genre_mask.to(device=g.device, dtype=torch.bool)
            if genre_mask.shape != (g.shape[0],):
                raise ValueError(f"genre_mask must be ({g.shape[0]},), got {genre_mask.shape}")
            if bool(genre_mask.any()):
                g = g[genre_mask]
        return ag_residual(v, g, w, self.phi, self.temperature, self.backend)

    def extra_repr(self) -> str:
        return f"genres={self.genres.shape[0]}, dim={self.genres.shape[1]}, phi={self.phi!r}"
