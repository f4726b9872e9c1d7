"""The custom op: C++ extension vs vectorised reference, dtypes, opcheck, compile, fallbacks."""

from __future__ import annotations

import pytest
import torch

import sseg.ops.pseudo_boundary as pb
from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference


def _batch(b, length, dim, k, seed, min_len=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, dim, generator=gen)
    lengths = torch.randint(min_len or k, length + 1, (b,), generator=gen)
    anchors = torch.stack(
        [torch.sort(torch.randperm(int(n), generator=gen)[:k]).values for n in lengths]
    )
    return x, anchors, lengths


def _agree(b1, s1, b2, s2, frac=0.995):
    """Scores match closely; boundaries match except (rarely) on float near-ties."""
    torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-4)
    same = (b1 == b2).all(dim=1).float().mean().item()
    assert same >= frac, same


@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
@pytest.mark.parametrize(
    ("b", "length", "dim", "k"),
    [(300, 17, 512, 2), (300, 17, 64, 4), (200, 64, 32, 8), (50, 200, 16, 16), (20, 1024, 4, 3)],
)
def test_extension_matches_reference(mode, b, length, dim, k):
    x, anchors, lengths = _batch(b, length, dim, k, seed=b + length + k)
    _agree(
        *pseudo_boundaries(x, anchors, lengths, mode),
        *pseudo_boundaries_reference(x, anchors, lengths, mode),
    )


def test_empty_batch():
    bounds, scores = pseudo_boundaries(torch.zeros(0, 5, 3), torch.zeros(0, 2, dtype=torch.long))
    assert bounds.shape == (0, 1) and scores.shape == (0,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_are_computed_in_float32(dtype, monkeypatch):
    monkeypatch.setattr(pb, "_CHUNK_FLOATS", 17 * 32 * 7)  # force several widening chunks
    x, anchors, lengths = _batch(50, 17, 32, 3, seed=5)
    xl = x.to(dtype)
    b, s = pseudo_boundaries(xl, anchors, lengths)
    b32, s32 = pseudo_boundaries(xl.float(), anchors, lengths)
    assert torch.equal(b, b32) and torch.equal(s, s32)
    assert s.dtype == torch.float32


def test_non_contiguous_and_int32_inputs():
    x, anchors, lengths = _batch(40, 20, 8, 3, seed=9)
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not xt.is_contiguous()
    b1, s1 = pseudo_boundaries(xt, anchors.int(), lengths.int())
    b2, s2 = pseudo_boundaries(x, anchors, lengths)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)


def test_boundaries_lie_between_anchors():
    x, anchors, lengths = _batch(500, 33, 16, 5, seed=11)
    for mode in ("mean", "sum", "mean_others"):
        bounds, _ = pseudo_boundaries(x, anchors, lengths, mode)
        assert (bounds >= anchors[:, :-1]).all() and (bounds < anchors[:, 1:]).all()


def test_mean_scores_are_optimal_over_random_alternatives():
    x, anchors, lengths = _batch(64, 24, 16, 3, seed=13)
    _, best = pseudo_boundaries(x, anchors, lengths)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):  # any admissible tuple scores no better than the optimum
        lo, hi = anchors[:, :-1], anchors[:, 1:]
        alt = lo + (torch.rand(lo.shape, generator=gen) * (hi - lo)).long()
        score = torch.zeros(64)
        for i in range(64):
            n = int(lengths[i])
            xi = torch.nn.functional.normalize(x[i, :n], dim=-1)
            edges = [-1, *alt[i].tolist(), n - 1]
            for k in range(3):
                seg = xi[edges[k] + 1 : edges[k + 1] + 1] @ xi[anchors[i, k]]
                score[i] += seg.mean()
        assert (score <= best + 1e-5).all()


def test_opcheck_cpu():
    samples = [_batch(6, 9, 5, 2, seed=1), _batch(4, 17, 12, 4, seed=2), _batch(3, 5, 3, 5, 3)]
    for x, anchors, lengths in samples:
        for mode in (0, 1):
            torch.library.opcheck(
                torch.ops.sseg.pseudo_boundaries.default, (x, anchors, lengths, mode)
            )


def test_outputs_are_not_differentiable():
    x, anchors, lengths = _batch(5, 9, 4, 3, seed=4)
    x.requires_grad_(True)
    bounds, scores = torch.ops.sseg.pseudo_boundaries(x, anchors, lengths, 1)
    assert not scores.requires_grad and not bounds.requires_grad
    bounds, scores = pseudo_boundaries(x, anchors, lengths)
    assert not scores.requires_grad


def test_traces_under_torch_compile():
    x, anchors, lengths = _batch(16, 12, 8, 3, seed=6)

    def f(x, anchors, lengths):
        bounds, scores = torch.ops.sseg.pseudo_boundaries(x * 2.0, anchors, lengths, 1)
        return bounds + 1, scores.sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    b1, s1 = compiled(x, anchors, lengths)
    b2, s2 = f(x, anchors, lengths)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)


def test_falls_back_to_reference_with_warning(monkeypatch):
    monkeypatch.setattr(pb, "_cpu_extension", lambda: None)
    monkeypatch.setattr(pb, "_warned_fallback", False)
    x, anchors, lengths = _batch(30, 15, 8, 3, seed=7)
    with pytest.warns(RuntimeWarning, match="falls back"):
        b, s = pseudo_boundaries(x, anchors, lengths)
    rb, rs = pseudo_boundaries_reference(x, anchors, lengths)
    assert torch.equal(b, rb) and torch.equal(s, rs)


def test_missing_cuda_extension_says_how_to_build(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cuda(name, globals=None, locals=None, fromlist=(), level=0):
        if fromlist and "_dtw_cuda" in fromlist:
            raise ImportError("not built")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_cuda)
    with pytest.raises(RuntimeError, match="SSEG_BUILD_CUDA=1"):
        pb._cuda_extension()


def test_thread_count_does_not_change_results():
    from sseg import _dtw_cpu

    assert _dtw_cpu.isa in ("avx512", "avx2", "baseline")
    x, anchors, lengths = _batch(4000, 17, 64, 4, seed=12)  # > 2^22 floats: parallel path
    args = (x.numpy(), anchors.numpy(), lengths.numpy())
    for mode in (0, 1):
        b1, s1 = _dtw_cpu.pseudo_boundaries(*args, mode, 1)
        b2, s2 = _dtw_cpu.pseudo_boundaries(*args, mode, 2)
        assert (b1 == b2).all() and (s1 == s2).all()


def test_checks_hold_under_torch_compile():
    """The value checks live inside the op, so a compiled graph still rejects bad input."""
    from sseg.errors import InputError

    x, anchors, lengths = _batch(6, 12, 8, 3, seed=9)

    def f(x, anchors, lengths):
        return pseudo_boundaries(x * 1.0, anchors, lengths)[0] + 0

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(x, anchors, lengths), f(x, anchors, lengths))
    bad = x.clone()
    bad[4, 1, 2] = float("nan")
    with pytest.raises(InputError, match=r"x\[4\] has NaN/inf"):
        compiled(bad, anchors, lengths)
    swapped = anchors.clone()
    swapped[2] = swapped[2].flip(0)
    with pytest.raises(InputError, match=r"anchors\[2\]"):
        compiled(x, swapped, lengths)


def test_unchecked_calls_flag_bad_sequences_instead_of_raising(monkeypatch):
    """check=False (the training hot path): no checks run, NaN shots give a NaN score."""
    x, anchors, lengths = _batch(5, 10, 6, 2, seed=10)
    x[3, 0, 0] = float("inf")
    bounds, scores = pseudo_boundaries(x, anchors, lengths, check=False)
    assert torch.isnan(scores[3]) and torch.isfinite(scores[[0, 1, 2, 4]]).all()
    good, _ = pseudo_boundaries(x[[0, 1, 2, 4]], anchors[[0, 1, 2, 4]], lengths[[0, 1, 2, 4]])
    assert torch.equal(bounds[[0, 1, 2, 4]], good)
    with pytest.raises(ValueError, match=r"x\[3\]"):
        pseudo_boundaries(x, anchors, lengths)
