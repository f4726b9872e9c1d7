"""Every bad input raises a ValueError naming the problem (op and reference alike)."""

from __future__ import annotations

import pytest
import torch

from sseg.errors import InputError
from sseg.ops import pseudo_boundaries, pseudo_boundaries_reference

X = torch.randn(2, 8, 4)
A = torch.tensor([[0, 3, 6], [1, 2, 7]])
N = torch.tensor([8, 8])


def _nan_at(b, i):
    x = X.clone()
    x[b, i, 1] = float("nan")
    return x


def _inf_at(b, i):
    x = X.clone()
    x[b, i, 0] = -float("inf")
    return x


CASES = [
    ("x 2-D", dict(x=X[0]), r"x must be \(B, L, D\)"),
    ("x 4-D", dict(x=X[None]), r"x must be \(B, L, D\)"),
    ("x int", dict(x=X.long()), "floating"),
    ("x L=0", dict(x=X[:, :0], anchors=A, lengths=None), r"L = 0"),
    ("x too long", dict(x=torch.zeros(2, 1025, 1)), r"\[1, 1024\]"),
    ("anchors 1-D", dict(anchors=A[0]), r"anchors must be \(B, K\)"),
    ("anchors float", dict(anchors=A.float()), "anchors must be integers"),
    ("anchors bool", dict(anchors=A > 2), "anchors must be integers"),
    ("K=1", dict(anchors=A[:, :1]), "K = 1"),
    ("K=17", dict(x=torch.randn(2, 20, 3), anchors=torch.arange(17).repeat(2, 1)), "K = 17"),
    ("batch anchors", dict(anchors=A[:1]), "batch mismatch"),
    ("batch lengths", dict(lengths=N[:1]), "batch mismatch"),
    ("lengths 2-D", dict(lengths=N[None]), "lengths must be a 1-D"),
    ("lengths float", dict(lengths=N.float()), "lengths must be integers"),
    ("lengths 0", dict(lengths=torch.tensor([8, 0])), r"lengths\[1\] = 0 is outside"),
    ("lengths > L", dict(lengths=torch.tensor([9, 8])), r"lengths\[0\] = 9 is outside"),
    ("not increasing", dict(anchors=torch.tensor([[0, 3, 6], [1, 5, 5]])), "strictly increasing"),
    ("decreasing", dict(anchors=torch.tensor([[4, 3, 6], [1, 2, 7]])), r"anchors\[0\]"),
    ("negative", dict(anchors=torch.tensor([[-1, 3, 6], [1, 2, 7]])), "outside the valid"),
    ("past L", dict(anchors=torch.tensor([[0, 3, 8], [1, 2, 7]])), "outside the valid"),
    ("past length", dict(lengths=torch.tensor([8, 7])), r"anchors\[1\].*\[0, 7\)"),
    ("mode", dict(mode="median"), "unknown mode 'median'"),
    ("mode None", dict(mode=None), "unknown mode"),
    ("nan", dict(x=_nan_at(1, 5)), r"x\[1\] has NaN/inf"),
    ("inf", dict(x=_inf_at(0, 0)), r"x\[0\] has NaN/inf"),
    ("nan short", dict(x=_nan_at(0, 4), lengths=torch.tensor([7, 8])), r"x\[0\] has NaN"),
    ("not a tensor", dict(x=X.tolist()), "must be torch tensors"),
]


@pytest.mark.parametrize(
    "fn", [pseudo_boundaries, pseudo_boundaries_reference], ids=["op", "reference"]
)
@pytest.mark.parametrize(
    ("overrides", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_value_error(fn, overrides, message):
    kwargs = dict(x=X, anchors=A, lengths=N, mode="mean") | overrides
    with pytest.raises(ValueError, match=message) as info:
        fn(**kwargs)
    assert isinstance(info.value, InputError)


def test_the_valid_inputs_of_the_table_work():
    bounds, scores = pseudo_boundaries(X, A, N)
    assert bounds.shape == (2, 2) and torch.isfinite(scores).all()


def test_extension_rejects_bad_anchors_itself():
    from sseg import _dtw_cpu

    x = X.numpy()
    with pytest.raises(ValueError, match="sequence 1: anchors are not strictly increasing"):
        _dtw_cpu.pseudo_boundaries(x, [[0, 3, 6], [2, 2, 7]], [8, 8], 1)
    with pytest.raises(ValueError, match="sequence 0: anchor index is outside"):
        _dtw_cpu.pseudo_boundaries(x, [[0, 3, 9], [1, 2, 7]], [8, 8], 1)
    with pytest.raises(ValueError, match="valid length"):
        _dtw_cpu.pseudo_boundaries(x, A.numpy(), [8, 99], 0)
    with pytest.raises(ValueError, match="mode"):
        _dtw_cpu.pseudo_boundaries(x, A.numpy(), N.numpy(), 3)
