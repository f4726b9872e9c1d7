"""CUDA kernel vs the CPU extension / reference (needs a GPU and SSEG_BUILD_CUDA=1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference

pytestmark = pytest.mark.gpu


def _built() -> bool:
    try:
        from sseg import _dtw_cuda  # noqa: F401
    except ImportError:
        return False
    return True


needs_ext = pytest.mark.skipif(not _built(), reason="rebuild with SSEG_BUILD_CUDA=1")


def _batch(b, length, dim, k, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, dim, generator=gen)
    lengths = torch.randint(k, length + 1, (b,), generator=gen)
    anchors = torch.stack(
        [torch.sort(torch.randperm(int(n), generator=gen)[:k]).values for n in lengths]
    )
    return x, anchors, lengths


@pytest.mark.skipif(_built(), reason="the CUDA extension is built")
def test_unbuilt_extension_gives_a_clear_error():
    x, anchors, lengths = _batch(4, 9, 8, 2, seed=0)
    with pytest.raises(RuntimeError, match="SSEG_BUILD_CUDA=1"):
        pseudo_boundaries(x.cuda(), anchors, lengths)


@needs_ext
@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
@pytest.mark.parametrize(
    ("b", "length", "dim", "k"),
    [
        (4096, 17, 512, 2),  # shared scratch, float4 loads
        (1000, 33, 510, 4),  # D % 4 != 0: scalar loads
        (500, 64, 64, 8),
        (64, 300, 16, 16),
        (40, 1024, 8, 16),  # scratch too big for shared memory: global workspace
        (3, 5, 1, 5),  # fewer sequences than warps in a block
    ],
)
def test_cuda_matches_cpu(mode, b, length, dim, k):
    x, anchors, lengths = _batch(b, length, dim, k, seed=b + k)
    cb, cs = pseudo_boundaries(x.cuda(), anchors.cuda(), lengths.cuda(), mode)
    rb, rs = pseudo_boundaries(x, anchors, lengths, mode)
    assert cb.is_cuda and cb.dtype == torch.int64 and cs.dtype == torch.float32
    torch.testing.assert_close(cs.cpu(), rs, rtol=1e-4, atol=1e-4)
    assert (cb.cpu() == rb).all(dim=1).float().mean() >= 0.995
    gb, gs = pseudo_boundaries_reference(x.cuda(), anchors.cuda(), lengths.cuda(), mode)
    torch.testing.assert_close(gs.cpu(), rs, rtol=1e-4, atol=1e-4)


@needs_ext
def test_unaligned_rows_and_half_precision():
    x, anchors, lengths = _batch(300, 20, 64, 3, seed=3)
    flat = torch.empty(x.numel() + 1, device="cuda")
    flat[1:] = x.flatten().cuda()
    unaligned = flat[1:].view_as(x)  # contiguous, data pointer 4 bytes off 16
    b1, s1 = pseudo_boundaries(unaligned, anchors, lengths)
    b2, s2 = pseudo_boundaries(x, anchors, lengths)
    torch.testing.assert_close(s1.cpu(), s2, rtol=1e-4, atol=1e-4)
    assert (b1.cpu() == b2).all(dim=1).float().mean() >= 0.99
    b3, s3 = pseudo_boundaries(x.half().cuda(), anchors, lengths)
    b4, s4 = pseudo_boundaries(x.half(), anchors, lengths)
    torch.testing.assert_close(s3.cpu(), s4, rtol=1e-4, atol=1e-4)


@needs_ext
@pytest.mark.parametrize("mode", ["mean", "sum", "mean_others"])
def test_cuda_tie_rule_matches_cpu_exactly(mode):
    rng = np.random.default_rng(0)
    cats = torch.from_numpy(rng.integers(0, 3, size=(2000, 12)))
    x = torch.eye(3)[cats]  # one-hot shots: cosines exactly 0 or 1, many exact ties
    anchors = torch.stack([torch.sort(torch.randperm(12)[:4]).values for _ in range(2000)])
    cb, cs = pseudo_boundaries(x.cuda(), anchors, mode=mode)
    rb, rs = pseudo_boundaries(x, anchors, mode=mode)
    assert torch.equal(cb.cpu(), rb) and torch.equal(cs.cpu(), rs)


@needs_ext
def test_cuda_nan_and_padding():
    x, anchors, lengths = _batch(64, 30, 16, 3, seed=5)
    y = x.clone()
    y[torch.arange(30)[None, :] >= lengths[:, None]] = float("nan")
    b1, s1 = pseudo_boundaries(y.cuda(), anchors, lengths)
    b2, s2 = pseudo_boundaries(x.cuda(), anchors, lengths)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    y[7, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"x\[7\] has NaN/inf"):
        pseudo_boundaries(y.cuda(), anchors, lengths)


@needs_ext
def test_opcheck_cuda():
    x, anchors, lengths = _batch(16, 17, 32, 3, seed=8)
    for mode in (0, 1):
        torch.library.opcheck(
            torch.ops.sseg.pseudo_boundaries.default,
            (x.cuda(), anchors.cuda(), lengths.cuda(), mode),
        )
