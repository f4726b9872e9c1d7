"""Fused AG-Residual Triton kernels vs the PyTorch reference (interpreter on CPU)."""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sseg.kernels import (
    AGResidual,
    ag_residual,
    ag_residual_reference,
    ag_residual_shot_mean,
    ag_residual_shot_mean_reference,
    feature_dtype,
)
from sseg.kernels.ag_residual import AGResidualFunction, ag_residual_op

# the package re-exports the function ``ag_residual``, which shadows the submodule attribute
agr = importlib.import_module("sseg.kernels.ag_residual")
N_G = 21
TOL = {torch.float32: (2e-5, 2e-5), torch.float16: (2e-2, 2e-2), torch.bfloat16: (8e-2, 8e-2)}


# Triton tests run on the GPU where there is one, else in the interpreter on CPU tensors.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(m: int, d: int, dtype: torch.dtype, n_g: int = N_G, scale: float = 0.05, device=DEVICE):
    v = torch.randn(m, d).to(device=device, dtype=dtype)
    g = torch.randn(n_g, d).to(device)
    w = (torch.randn(d, d) * scale).to(device)
    return v, g, w


def _reference_grads(v, g, w, phi, temperature, grad_out):
    """Output, dV and dW of the float32 reference on the same (rounded) inputs."""
    v32 = v.detach().float().clone().requires_grad_()
    w32 = w.clone().requires_grad_()
    out = ag_residual_reference(v32, g, g @ w32, phi, temperature)
    out.backward(grad_out.float())
    return out.detach(), v32.grad, w32.grad


def _close(actual, expected, dtype, what):
    atol, rtol = TOL[dtype]
    scale = expected.abs().max().clamp_min(1.0)
    err = (actual.float() - expected.float()).abs().max() / scale
    assert err <= max(atol, rtol), f"{what}: relative max error {err:.2e} for {dtype}"


CASES = [
    (1, 200, torch.float32),
    (37, 200, torch.float32),
    (37, 200, torch.float16),
    (37, 64, torch.float16),
    (1, 64, torch.float16),
]


@pytest.mark.parametrize("phi,temperature", [("identity", 1.0), ("softmax", 0.1)])
@pytest.mark.parametrize("m,d,dtype", CASES)
def test_triton_matches_reference_forward_and_backward(m, d, dtype, phi, temperature):
    v, g, w = _inputs(m, d, dtype)
    grad_out = torch.randn(m, d).to(v.device, dtype)
    ref_out, ref_dv, ref_dw = _reference_grads(v, g, w, phi, temperature, grad_out)

    vt = v.clone().requires_grad_()
    wt = w.clone().requires_grad_()
    out = ag_residual(vt, g, wt, phi, temperature, backend="triton")
    out.backward(grad_out)

    assert out.dtype == dtype and out.shape == (m, d)
    assert vt.grad.dtype == dtype and wt.grad.dtype == torch.float32
    _close(out, ref_out, dtype, "out")
    _close(vt.grad, ref_dv, dtype, "dV")
    _close(wt.grad, ref_dw, dtype, "dW")
    # the residual is really there: out differs from v, dV differs from dOut
    assert (ref_out - v.float()).abs().max() > 1e-3
    assert (ref_dv - grad_out.float()).abs().max() > 1e-3


def test_d512_and_leading_dims_with_many_row_blocks():
    v, g, w = _inputs(2 * 37, 512, torch.float32)
    v = v.reshape(2, 37, 512)
    grad_out = torch.randn_like(v)
    ref_out, ref_dv, ref_dw = _reference_grads(
        v.reshape(-1, 512), g, w, "softmax", 0.5, grad_out.reshape(-1, 512)
    )
    vt, wt = v.clone().requires_grad_(), w.clone().requires_grad_()
    out = ag_residual(vt, g, wt, "softmax", 0.5, backend="triton")
    out.backward(grad_out)
    assert out.shape == v.shape
    _close(out.reshape(-1, 512), ref_out, torch.float32, "out")
    _close(vt.grad.reshape(-1, 512), ref_dv, torch.float32, "dV")
    _close(wt.grad, ref_dw, torch.float32, "dW")


def test_wide_features_beyond_one_tile():
    """D is only chunked, never limited: D = 1100 with 3 row blocks over 2 programs."""
    v, g, w = _inputs(40, 1100, torch.float32)
    grad_out = torch.randn(40, 1100, device=v.device)
    ref_out, ref_dv, ref_dw = _reference_grads(v, g, w, "softmax", 0.2, grad_out)
    out = agr.ag_residual_forward(v, g, g @ w, phi="softmax", temperature=0.2)
    dv, dgw = agr.ag_residual_backward(v, g, g @ w, grad_out, phi="softmax", temperature=0.2)
    _close(out, ref_out, torch.float32, "out")
    _close(dv, ref_dv, torch.float32, "dV")
    _close(g.T @ dgw, ref_dw, torch.float32, "dW")


def test_fewer_genres_and_zero_rows():
    """N_g < 32 with a 5-genre subset; an all-zero token row takes the eps branch."""
    v, g, w = _inputs(20, 48, torch.float32, n_g=5)
    v[3] = 0.0
    grad_out = torch.randn(20, 48, device=v.device)
    for phi in ("identity", "softmax"):
        ref_out, ref_dv, ref_dw = _reference_grads(v, g, w, phi, 1.0, grad_out)
        dv, dgw = agr.ag_residual_backward(v, g, g @ w, grad_out, phi=phi)
        out = agr.ag_residual_forward(v, g, g @ w, phi=phi)
        _close(out, ref_out, torch.float32, "out")
        _close(dv, ref_dv, torch.float32, "dV")
        _close(g.T @ dgw, ref_dw, torch.float32, "dW")


@settings(max_examples=12, deadline=None)
@given(
    m=st.integers(1, 40),
    d=st.integers(1, 130),
    n_g=st.integers(1, 32),
    softmax=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_reference(m, d, n_g, softmax, seed):
    torch.manual_seed(seed)
    phi = "softmax" if softmax else "identity"
    v, g, w = _inputs(m, d, torch.float32, n_g=n_g, scale=0.2)
    grad_out = torch.randn(m, d, device=v.device)
    ref_out, ref_dv, ref_dw = _reference_grads(v, g, w, phi, 0.3, grad_out)
    out = agr.ag_residual_forward(v, g, g @ w, phi=phi, temperature=0.3)
    dv, dgw = agr.ag_residual_backward(v, g, g @ w, grad_out, phi=phi, temperature=0.3)
    _close(out, ref_out, torch.float32, "out")
    _close(dv, ref_dv, torch.float32, "dV")
    _close(g.T @ dgw, ref_dw, torch.float32, "dW")


def test_autograd_function_matches_custom_op():
    v, g, w = _inputs(17, 40, torch.float32)
    gw = (g @ w).requires_grad_()
    grad_out = torch.randn(17, 40, device=v.device)
    v1 = v.clone().requires_grad_()
    AGResidualFunction.apply(v1, g, gw, None, "softmax", 0.3, 1).backward(grad_out)
    dv1, dgw1 = v1.grad, gw.grad.clone()
    gw.grad = None
    v2 = v.clone().requires_grad_()
    on = torch.ones(N_G, device=v.device)
    ag_residual_op(v2, g, gw, on, "softmax", 0.3, 1).backward(grad_out)
    torch.testing.assert_close(v2.grad, dv1)
    torch.testing.assert_close(gw.grad, dgw1)


@pytest.mark.parametrize("phi", ["identity", "softmax"])
def test_reference_gradcheck_float64(phi):
    v = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 12, dtype=torch.float64)
    gw = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v_, gw_: ag_residual_reference(v_, g, gw_, phi, 0.7), (v, gw)
    )


def test_reference_gradients_match_the_closed_form():
    """The backward math the kernel implements, written out in float64."""
    v = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 10, dtype=torch.float64)
    gw = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(6, 10, dtype=torch.float64)
    t = 0.5
    ag_residual_reference(v, g, gw, "softmax", t).backward(dout)
    with torch.no_grad():
        norm = v.norm(dim=1, keepdim=True)
        n = v / norm
        g_hat = g / g.norm(dim=1, keepdim=True)
        a = torch.softmax(n @ g_hat.T / t, dim=1)
        da = dout @ gw.T
        ds = a * (da - (da * a).sum(1, keepdim=True)) / t
        dn = ds @ g_hat
        dv = dout + (dn - n * (n * dn).sum(1, keepdim=True)) / norm
    torch.testing.assert_close(v.grad, dv)
    torch.testing.assert_close(gw.grad, a.T @ dout)


def test_module_zero_init_is_identity_and_mask_restricts_genres():
    v, g, _ = _inputs(9, 32, torch.float32)
    layer = AGResidual(g, phi="softmax", temperature=0.2, backend="triton")
    torch.testing.assert_close(layer(v), v)
    assert {name for name, _ in layer.named_parameters()} == {"weight"}
    assert set(layer.state_dict()) == {"genres", "weight"}
    with torch.no_grad():
        layer.weight.normal_(0, 0.1)
    mask = torch.zeros(N_G, dtype=torch.bool, device=g.device)
    mask[[0, 4, 7]] = True
    expected = ag_residual_reference(v, g[mask], g[mask] @ layer.weight, "softmax", 0.2)
    torch.testing.assert_close(layer(v, genre_mask=mask), expected, atol=1e-5, rtol=1e-5)
    assert (layer(v, genre_mask=mask) - layer(v)).abs().max() > 1e-4
    torch.testing.assert_close(layer(v, genre_mask=torch.zeros(N_G, dtype=torch.bool)), layer(v))
    with pytest.raises(ValueError, match="genre_mask"):
        layer(v, genre_mask=torch.ones(3, dtype=torch.bool))


def test_dispatch_cpu_default_is_reference_and_triton_can_be_forced(monkeypatch):
    calls = []
    real = agr.ag_residual_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(agr, "ag_residual_forward", counting)
    monkeypatch.delenv("SSEG_AG_BACKEND", raising=False)
    ag_residual(*_inputs(4, 16, torch.float32, device="cpu"))
    assert calls == []
    v, g, w = _inputs(4, 16, torch.float32)
    ag_residual(v, g, w, backend="triton")
    assert len(calls) == 1
    monkeypatch.setenv("SSEG_AG_BACKEND", "triton")
    ag_residual(v, g, w)
    assert len(calls) == 2
    ag_residual(v, g, w, backend="reference")
    assert len(calls) == 2
    monkeypatch.setenv("SSEG_AG_BACKEND", "cuda-please")
    with pytest.raises(ValueError, match="backend"):
        ag_residual(v, g, w)


def test_bad_inputs_are_rejected():
    v, g, w = _inputs(4, 16, torch.float32)
    with pytest.raises(ValueError, match="phi"):
        ag_residual(v, g, w, phi="relu")
    with pytest.raises(ValueError, match="genres"):
        agr.ag_residual_forward(v, torch.randn(33, 16), torch.randn(33, 16))
    with pytest.raises(ValueError, match="expected v"):
        agr.ag_residual_forward(v, g[:, :8], g[:, :8])
    with pytest.raises(ValueError, match="temperature"):
        AGResidual(g, phi="softmax", temperature=0.0)


def test_unsupported_inputs_fall_back_or_raise_when_triton_is_forced(monkeypatch):
    v, g, w = _inputs(3, 16, torch.float32)
    assert agr.triton_unsupported(v, g) is None
    assert "dtype" in agr.triton_unsupported(v.double(), g)
    assert "33 genres" in agr.triton_unsupported(v, torch.randn(33, 16))
    assert "requires grad" in agr.triton_unsupported(v, g.clone().requires_grad_())
    with pytest.raises(ValueError, match="Triton backend: dtype torch.float64"):
        ag_residual(v.double(), g.double(), w.double(), backend="triton")
    # automatic dispatch (here: pretend every tensor is a CUDA tensor) falls back
    monkeypatch.setattr(agr, "resolve_backend", lambda v_, backend=None: "triton")
    out = ag_residual(v.double(), g.double(), w.double())
    expected = ag_residual_reference(v.double(), g.double(), g.double() @ w.double())
    torch.testing.assert_close(out, expected)


def test_custom_op_opcheck_and_compile_fullgraph():
    v, g, w = _inputs(19, 32, torch.float32)
    on = torch.ones(N_G, device=v.device)
    torch.library.opcheck(ag_residual_op, (v, g, g @ w, on, "identity", 1.0, 1))
    v3 = v[:18].clone().requires_grad_()
    torch.library.opcheck(ag_residual_op, (v3, g, g @ w, on, "softmax", 0.5, 3))

    def loss(v_, w_):
        return ag_residual(v_, g, w_, "softmax", 0.5, backend="triton").square().sum()

    try:
        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
        vc, wc = v.clone().requires_grad_(), w.clone().requires_grad_()
        out = compiled(vc, wc)
    except Exception as exc:  # noqa: BLE001 - compile stack unavailable here
        pytest.skip(f"torch.compile unavailable: {exc}")
    out.backward()
    ve, we = v.clone().requires_grad_(), w.clone().requires_grad_()
    expected = ag_residual(ve, g, we, "softmax", 0.5, backend="reference").square().sum()
    expected.backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(vc.grad, ve.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(wc.grad, we.grad, rtol=1e-4, atol=1e-4)


def _shot_mean_grads(v, g, w, phi, temperature, grad_out, mask=None, need_dv=True):
    """Output, dV (or None) and dW of the float32 shot-mean reference."""
    v32 = v.detach().float().clone().requires_grad_(need_dv)
    w32 = w.clone().requires_grad_()
    on = None if mask is None else agr.genre_on_from_mask(mask, g.shape[0], v.device)
    out = ag_residual_shot_mean_reference(v32, g, g @ w32, phi, temperature, on)
    out.backward(grad_out.float())
    return out.detach(), v32.grad, w32.grad


@pytest.mark.parametrize("need_dv", [True, False])
@pytest.mark.parametrize("phi,temperature", [("identity", 1.0), ("softmax", 0.2)])
@pytest.mark.parametrize(
    "shape,dtype",
    [((2, 5, 3, 40), torch.float32), ((9, 3, 64), torch.float16), ((6, 1, 24), torch.float32)],
)
def test_fused_shot_mean_matches_reference(shape, dtype, phi, temperature, need_dv):
    """mean over K of the residual in one kernel, incl. K = 1 and leading dims; the
    backward skips dV when V needs no grad."""
    v, g, w = _inputs(1, shape[-1], dtype)
    v = torch.randn(shape).to(v.device, dtype)
    grad_out = torch.randn(shape[:-2] + shape[-1:]).to(v.device, dtype)
    mask = torch.zeros(N_G, dtype=torch.bool)
    mask[[2, 3, 11, 20]] = True
    ref_out, ref_dv, ref_dw = _shot_mean_grads(v, g, w, phi, temperature, grad_out, mask, need_dv)
    vt, wt = v.clone().requires_grad_(need_dv), w.clone().requires_grad_()
    out = ag_residual_shot_mean(vt, g, wt, phi, temperature, backend="triton", genre_mask=mask)
    out.backward(grad_out)
    assert out.shape == shape[:-2] + shape[-1:] and out.dtype == dtype
    _close(out, ref_out, dtype, "out")
    _close(wt.grad, ref_dw, dtype, "dW")
    if need_dv:
        _close(vt.grad, ref_dv, dtype, "dV")
    else:
        assert vt.grad is None
    # the mean really is of the residual: differs from the mean of V
    assert (ref_out - v.float().mean(-2)).abs().max() > 1e-3


def test_backward_skips_dv_when_v_is_frozen(monkeypatch):
    calls = []
    real = agr.ag_residual_backward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("need_dv", args[8] if len(args) > 8 else True))
        return real(*args, **kwargs)

    monkeypatch.setattr(agr, "ag_residual_backward", spy)
    v, g, w = _inputs(12, 32, torch.float32)
    for frozen in (True, False):
        vt, wt = v.clone().requires_grad_(not frozen), w.clone().requires_grad_()
        ag_residual(vt, g, wt, "softmax", 0.5, backend="triton").sum().backward()
        assert (vt.grad is None) == frozen and wt.grad is not None
    assert calls == [False, True]
    dv, dgw = agr.ag_residual_backward(v, g, g @ w, torch.ones_like(v), need_dv=False)
    assert dv.numel() == 0 and dgw.shape == g.shape


def test_model_shot_features_use_the_fused_mean_in_the_feature_dtype():
    from sseg.modeling.model import SceneModel

    g = torch.nn.functional.normalize(torch.randn(N_G, 32), dim=-1)
    model = SceneModel(g)
    with torch.no_grad():
        model.genre_residual.weight.normal_(0, 0.1)
    keyframes = torch.randn(4, 6, 3, 32).half()  # fp16 as the feature store holds them
    assert feature_dtype(keyframes) == torch.float32  # CPU: float32 (no CUDA autocast)
    out = model.shot_features(keyframes)
    w = model.genre_residual.weight
    expected = ag_residual_shot_mean_reference(keyframes.float(), g, g @ w)
    assert out.dtype == torch.float32 and out.shape == (4, 6, 32)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_genre_masks_compile_fullgraph_without_recompiling(backend):
    """A mask is a (N_g,) vector the kernels read: fullgraph tracing, one graph for all masks."""
    from torch._dynamo.testing import CompileCounterWithBackend

    v, g, _ = _inputs(10, 24, torch.float32)
    layer = AGResidual(g, phi="softmax", temperature=0.5, backend=backend).to(v.device)
    with torch.no_grad():
        layer.weight.normal_(0, 0.1)
    counter = CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, m: layer.shot_mean(x, m), fullgraph=True, backend=counter)
    x = v.view(5, 2, 24)
    masks = [torch.zeros(N_G, dtype=torch.bool) for _ in range(3)]
    masks[0][[1, 2]] = True
    masks[1][[0, 4, 7, 8, 9, 15]] = True  # masks[2] stays empty: every genre
    try:
        outs = [compiled(x, m.to(v.device)) for m in masks]
    except Exception as exc:  # noqa: BLE001 - compile stack unavailable here
        pytest.skip(f"torch.compile unavailable: {exc}")
    assert counter.frame_count == 1
    for m, out in zip(masks, outs, strict=True):
        rows = g[m.to(g.device)] if m.any() else g
        expected = ag_residual_shot_mean_reference(x, rows, rows @ layer.weight, "softmax", 0.5)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_autotune_configs_fit_sm80_and_sm90_and_size_the_grid():
    """Every config list leaves configs that fit A100 and H100/H200 shared memory, and a
    persistent grid never holds more programs per SM than shared memory and threads allow."""
    sm80 = agr.DeviceLimits(sms=108, shared_per_block=166912, shared_per_sm=167936,
                            threads_per_sm=2048)  # fmt: skip
    sm90 = agr.DeviceLimits(sms=132, shared_per_block=232448, shared_per_sm=233472,
                            threads_per_sm=2048)  # fmt: skip
    for limits in (sm80, sm90):
        for configs, backward in ((agr.FORWARD_CONFIGS, False), (agr.BACKWARD_CONFIGS, True)):
            for elt in (2, 4):
                fit = agr._fits(configs, elt, backward, limits)
                assert len(fit) >= 3
                for c in fit:
                    shared = agr.shared_memory_estimate(c, elt, backward)
                    assert shared <= limits.shared_per_block
                    per_sm = agr.programs_per_sm(c, elt, backward, limits)
                    assert per_sm * shared <= limits.shared_per_sm or per_sm == 1
                    assert per_sm * 32 * c.num_warps <= limits.threads_per_sm
                    rows = 1 << 20
                    programs = agr.grid_size(c, rows, elt, backward, limits)
                    blocks = -(-rows // c.kwargs["BLOCK_M"])
                    assert programs == (blocks if c.kwargs["WAVES"] == 0 else per_sm * limits.sms)
    tiny = agr.DeviceLimits(sms=4, shared_per_block=40000, shared_per_sm=40000, threads_per_sm=2048)
    assert len(agr._fits(agr.BACKWARD_CONFIGS, 4, True, tiny)) == 1  # the smallest, not none
    assert [agr.row_bucket(m) for m in (1, 16, 17, 64, 65, 3000, 1 << 20)] == [
        16, 16, 64, 64, 256, 4096, 1 << 20,
    ]  # fmt: skip
    assert "M_BUCKET" in agr._ag_residual_forward_kernel.keys
    assert "M_BUCKET" in agr._ag_residual_backward_kernel.keys


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("phi", ["identity", "softmax"])
@pytest.mark.parametrize("m,d", [(1, 200), (1000, 512), (4099, 768), (257, 1024), (70, 1500)])
def test_gpu_triton_matches_reference(m, d, dtype, phi):
    v, g, w = (t.cuda() for t in _inputs(m, d, dtype))
    grad_out = torch.randn(m, d, device="cuda").to(dtype)
    ref_out, ref_dv, ref_dw = _reference_grads(v, g, w, phi, 0.5, grad_out)
    vt, wt = v.clone().requires_grad_(), w.clone().requires_grad_()
    out = ag_residual(vt, g, wt, phi, 0.5)
    out.backward(grad_out)
    _close(out, ref_out, dtype, "out")
    _close(vt.grad, ref_dv, dtype, "dV")
    _close(wt.grad, ref_dw, dtype, "dW")


@pytest.mark.gpu
def test_gpu_inductor_compile_fullgraph():
    v, g, w = (t.cuda() for t in _inputs(300, 512, torch.bfloat16))
    v.requires_grad_()
    w.requires_grad_()
    compiled = torch.compile(lambda v_, w_: ag_residual(v_, g, w_).float().sum(), fullgraph=True)
    compiled(v, w).backward()
    ve, we = v.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ag_residual(ve, g, we, backend="reference").float().sum().backward()
    _close(v.grad, ve.grad, torch.bfloat16, "dV")
    _close(w.grad, we.grad, torch.bfloat16, "dW")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU compiles the kernels for real")
@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_for_gpus_without_one(arch):
    """Ahead-of-time compile for sm_80 / sm_90 (Triton's bundled ptxas); no GPU needed."""
    import subprocess
    import sys
    from pathlib import Path

    import triton

    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not ptxas.exists():
        pytest.skip("Triton has no bundled ptxas")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "sseg.kernels.compile_check", "--arch", str(arch)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 4  # forward + backward, bf16 + fp32
