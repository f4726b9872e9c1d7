"""AG-Residual genre prior, fused in Triton: out = V + phi(cos(V, G)) @ (G @ W).

Layout (Liger-Kernel style, one file per op; the PyTorch reference is ``ag_residual_ref.py``):

* ``_ag_residual_forward_kernel``: programs take blocks of ``BLOCK_M`` output rows (one
  block each, or a persistent loop; autotuned). An output row is one token row (K = 1) or
  the mean over a shot's K keyframe rows (K = 3: the fused per-shot mean). Pass 1 over
  ``BLOCK_K`` feature chunks accumulates |V| and V @ G^T on the tensor cores for each of
  the K rows and sums A = phi(cos) in registers; pass 2 writes
  out = mean_k V_k + (mean_k A_k) @ GW chunk by chunk. V comes from DRAM once (pass 2
  re-reads the row block just read, from L1/L2) and only the (N, D) output is written.
* ``_ag_residual_backward_kernel``: a persistent grid; per row block dA = dOut @ GW^T / K,
  then per keyframe the affinity pass and, only when V needs a gradient (``NEED_DV``),
  the dV pass; finally A_mean^T dOut is added into the program's own (N_g, D) fp32 slice
  of a partial buffer (L2-resident, no atomics) that the launcher sums (dW = G^T d(GW)
  follows by autograd). Without dV the backward reads V and dOut and writes nothing
  large: 2 passes over the data instead of 3.
* The genre mask is a (N_g,) 1/0 vector read by the kernels (masked genres get A = 0, or
  leave the softmax), so G keeps its shape: no recompilation per mask and no
  data-dependent shapes under ``torch.compile(fullgraph=True)``.
* Autotuning is keyed on D, K, phi, NEED_DV, the dtypes and a power-of-4 bucket of the
  row count. Configs whose shared memory (:func:`shared_memory_estimate`, an upper bound
  that ``compile_check`` compares with ptxas) exceeds the device's per-block limit are
  pruned, and a persistent grid holds as many programs per SM as the config's shared
  memory and warps allow (capped by its ``WAVES``). ``SSEG_AUTOTUNE=quick`` keeps one
  config per kernel (short test runs).
* launchers ``ag_residual_forward`` / ``ag_residual_backward``; ``AGResidualFunction``
  (``torch.autograd.Function``); the custom ops ``torch.ops.sseg.ag_residual`` /
  ``sseg::ag_residual_backward`` (``register_fake`` + ``register_autograd``, so they work
  under ``torch.compile``); :func:`ag_residual`, :func:`ag_residual_shot_mean` (dispatch)
  and the :class:`AGResidual` module.

Dispatch: CUDA tensors use Triton, CPU tensors use the PyTorch reference.
The Triton kernels, configs and launchers live in ``ag_residual_triton.py``, imported on
first use (this module's attributes forward to it), so that importing ``sseg.kernels`` for
the CPU path (e.g. ``sseg segment``) does not import Triton.
``backend="triton"`` or ``SSEG_AG_BACKEND=triton`` forces Triton (on CPU tensors it needs
``TRITON_INTERPRET=1``); ``backend="reference"`` forces the reference.
"""

from __future__ import annotations

import importlib
import os

import torch
from torch import nn

from .ag_residual_ref import (
    PHI_CHOICES,
    ag_residual_reference,
    ag_residual_shot_mean_reference,
    genre_on_from_mask,
)

NG_PAD = 32  # genre rows held per program; N_g must not exceed it
BACKENDS = ("auto", "triton", "reference")


def _triton():
    """The Triton half of this op (``ag_residual_triton``), imported on first use."""
    return importlib.import_module(".ag_residual_triton", __package__)


def __getattr__(name: str):
    """Kernels, configs and grid helpers of ``ag_residual_triton``, as before the split."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_triton(), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


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
    return _triton().ag_residual_forward(v, g, gw, genre_on, phi, temperature, keyframes)


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
    return _triton().ag_residual_backward(
        v, g, gw, grad_out, genre_on, phi, temperature, keyframes, need_dv
    )


class AGResidualFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton launchers (gradients for V and GW; G is frozen)."""

    @staticmethod
    def forward(ctx, v, g, gw, genre_on=None, phi="identity", temperature=1.0, keyframes=1):
        ctx.save_for_backward(v, g, gw, genre_on)
        ctx.phi, ctx.temperature, ctx.keyframes = phi, temperature, keyframes
        return ag_residual_forward(v, g, gw, genre_on, phi, temperature, keyframes)

    @staticmethod
    def backward(ctx, grad_out):
        v, g, gw, genre_on = ctx.saved_tensors
        need_dv = ctx.needs_input_grad[0]
        dv, dgw = ag_residual_backward(
            v, g, gw, grad_out, genre_on, ctx.phi, ctx.temperature, ctx.keyframes, need_dv
        )
        return (dv if need_dv else None), None, dgw, None, None, None, None


# --- torch.library custom ops: opaque to torch.compile, differentiable via register_autograd


@torch.library.custom_op("sseg::ag_residual", mutates_args=())
def ag_residual_op(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    genre_on: torch.Tensor,
    phi: str,
    temperature: float,
    keyframes: int,
) -> torch.Tensor:
    """Triton forward as a custom op (``torch.ops.sseg.ag_residual``): (N*K, D) -> (N, D)."""
    return ag_residual_forward(v, g, gw, genre_on, phi, temperature, keyframes)


@ag_residual_op.register_fake
def _(v, g, gw, genre_on, phi, temperature, keyframes):
    return v.new_empty((v.shape[0] // keyframes, v.shape[1]))


@torch.library.custom_op("sseg::ag_residual_backward", mutates_args=())
def ag_residual_backward_op(
    v: torch.Tensor,
    g: torch.Tensor,
    gw: torch.Tensor,
    grad_out: torch.Tensor,
    genre_on: torch.Tensor,
    phi: str,
    temperature: float,
    keyframes: int,
    need_dv: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton backward as a custom op: (dV or an empty (0, D) tensor, d(GW))."""
    return ag_residual_backward(
        v, g, gw, grad_out, genre_on, phi, temperature, keyframes, need_dv
    )


@ag_residual_backward_op.register_fake
def _(v, g, gw, grad_out, genre_on, phi, temperature, keyframes, need_dv):
    dv = v.new_empty((v.shape[0] if need_dv else 0, v.shape[1]))
    return dv, torch.empty_like(gw)


def _setup_context(ctx, inputs, output):
    v, g, gw, genre_on, phi, temperature, keyframes = inputs
    ctx.save_for_backward(v, g, gw, genre_on)
    ctx.phi, ctx.temperature, ctx.keyframes = phi, temperature, keyframes


def _backward(ctx, grad_out):
    v, g, gw, genre_on = ctx.saved_tensors
    need_dv = ctx.needs_input_grad[0]  # V is frozen CLIP output in training: skip dV
    dv, dgw = ag_residual_backward_op(
        v, g, gw, grad_out, genre_on, ctx.phi, ctx.temperature, ctx.keyframes, need_dv
    )
    return (dv if need_dv else None), None, dgw, None, None, None, None


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


def feature_dtype(features: torch.Tensor) -> torch.dtype:
    """The dtype cached features enter AG-Residual in: the autocast dtype where CUDA autocast
    is on (bf16/fp16 from the store through the kernels to the context encoder), else fp32."""
    if features.is_cuda and torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    return torch.float32


def _apply(v, g, w, phi, temperature, backend, genre_mask, mean: bool):
    """Shared dispatch of :func:`ag_residual` and :func:`ag_residual_shot_mean` (``mean``)."""
    if phi not in PHI_CHOICES:
        raise ValueError(f"phi must be one of {PHI_CHOICES}, got {phi!r}")
    genre_on = None
    if genre_mask is not None:
        if genre_mask.shape != (g.shape[0],):
            raise ValueError(f"genre_mask must be ({g.shape[0]},), got {tuple(genre_mask.shape)}")
        genre_on = genre_on_from_mask(genre_mask, g.shape[0], v.device)
    gw = g.to(w.dtype) @ w
    use_triton = resolve_backend(v, backend) == "triton"
    if use_triton:
        reason = triton_unsupported(v, g)
        if reason and (backend or os.environ.get("SSEG_AG_BACKEND", "auto")) == "triton":
            raise ValueError(f"ag_residual Triton backend: {reason}")
        use_triton = reason is None
    d = v.shape[-1]
    keyframes = v.shape[-2] if mean else 1
    lead = v.shape[:-2] if mean else v.shape[:-1]
    if use_triton:
        if genre_on is None:
            genre_on = torch.ones(g.shape[0], device=v.device, dtype=torch.float32)
        rows = v.reshape(-1, d)
        out = ag_residual_op(rows, g, gw, genre_on, phi, float(temperature), keyframes)
        return out.reshape(*lead, d)
    if mean:
        return ag_residual_shot_mean_reference(v, g, gw, phi, temperature, genre_on)
    return ag_residual_reference(v, g, gw, phi, temperature, genre_on)


def ag_residual(
    v: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    backend: str | None = None,
    genre_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the genre residual to token rows ``v`` (..., D); returns v's shape and dtype.

    ``G @ W`` is formed once per call (a tiny (N_g, D) x (D, D) matmul). ``genre_mask``
    (N_g,) bool restricts the genres (all-False: every genre). Where the kernels do not
    apply (see :func:`triton_unsupported`) automatic dispatch uses the reference and a
    forced ``"triton"`` backend raises ``ValueError``.
    """
    return _apply(v, g, w, phi, temperature, backend, genre_mask, False)


def ag_residual_shot_mean(
    v: torch.Tensor,
    g: torch.Tensor,
    w: torch.Tensor,
    phi: str = "identity",
    temperature: float = 1.0,
    backend: str | None = None,
    genre_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused mean over keyframes of :func:`ag_residual`: v (..., K, D) -> (..., D).

    One kernel reads V once and writes only the shot means (about 1 + 1/K passes over V
    instead of 3 + 1/K for the residual, then the mean).
    """
    if v.ndim < 2:
        raise ValueError(f"v must be (..., K, D), got {tuple(v.shape)}")
    return _apply(v, g, w, phi, temperature, backend, genre_mask, True)


class AGResidual(nn.Module):
    """Genre-prior residual with a frozen genre bank G and a trainable W (zero init = identity).

    ``forward(v, genre_mask=None)`` and ``shot_mean(v, genre_mask=None)``: an optional
    (N_g,) bool mask restricts G to the genres a video's metadata lists (see
    :func:`sseg.modeling.genres.genre_mask`); an all-False or absent mask uses every genre.
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
        return ag_residual(
            v, self.genres, self.weight, self.phi, self.temperature, self.backend, genre_mask
        )

    def shot_mean(self, v: torch.Tensor, genre_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(..., K, D) keyframes -> (..., D): the mean over K of :meth:`forward`, fused."""
        return ag_residual_shot_mean(
            v, self.genres, self.weight, self.phi, self.temperature, self.backend, genre_mask
        )

    def extra_repr(self) -> str:
        return f"genres={self.genres.shape[0]}, dim={self.genres.shape[1]}, phi={self.phi!r}"
