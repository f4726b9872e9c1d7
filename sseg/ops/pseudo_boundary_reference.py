"""Pure-PyTorch pseudo-boundary search, vectorised over the batch.

Same semantics, tie rule and evaluation order as ``csrc/dtw_common.h``: cosine
``u.v / ((|u| + 1e-8)(|v| + 1e-8))``, prefix sums per anchor, sum mode as a
separable argmax, mean mode as a backward DP over boundaries (loops over K and
blocks of candidate boundaries only); boundaries are then picked forward as the
lexicographically smallest tuple within the tie tolerance of the best score.
"""

from __future__ import annotations

import torch

EPS = 1e-8
SUM, MEAN, MEAN_OTHERS = 0, 1, 2  # mode codes, as in csrc/dtw_common.h
_BLOCK_ELEMENTS = 1 << 24  # cap on B * block * L floats per DP step


def _prefix_sums(x: torch.Tensor, anchors: torch.Tensor, valid: torch.Tensor, mode: int):
    """Returns prefix sums (B, K, L+1) of cosine to each anchor and a finite flag (B,);
    mode 2 (mean_others) drops each anchor's similarity to itself."""
    batch, _, dim = x.shape
    norm = torch.linalg.vector_norm(x, dim=-1)  # (B, L)
    anchor_x = x.gather(1, anchors[..., None].expand(-1, -1, dim))  # (B, K, D)
    dots = torch.bmm(anchor_x, x.transpose(1, 2))  # (B, K, L)
    anchor_norm = norm.gather(1, anchors)
    sims = dots / ((norm[:, None, :] + EPS) * (anchor_norm[:, :, None] + EPS))
    sims = sims.masked_fill(~valid[:, None, :], 0.0)
    if mode == MEAN_OTHERS:
        sims = sims.scatter(2, anchors[..., None], 0.0)
    prefix = torch.nn.functional.pad(sims.cumsum(-1), (1, 0))
    finite = (torch.isfinite(norm) | ~valid).all(dim=1)
    return prefix, finite


def _segment(prefix_row: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mode: int):
    """Score of segments [lo, hi] (index tensors broadcast over prefix_row's batch)."""
    total = prefix_row.gather(-1, hi + 1) - prefix_row.gather(-1, lo)
    if mode == SUM:
        return total
    return total / _segment_count(hi - lo + 1, mode).to(total.dtype)


def _segment_count(shots: torch.Tensor, mode: int) -> torch.Tensor:
    """Shots a mean mode averages over: all of them, or all but the anchor (at least 1)."""
    return (shots if mode == MEAN else shots - 1).clamp(min=1)


def _tuple_score(prefix, bounds, lengths, mode: int) -> torch.Tensor:
    """Score of given boundary tuples, evaluated right to left like the C++."""
    k = prefix.shape[1]
    n1 = (lengths - 1)[:, None]
    s = _segment(prefix[:, k - 1], bounds[:, k - 2 : k - 1] + 1, n1, mode)
    for kk in range(k - 2, -1, -1):
        lo = torch.zeros_like(n1) if kk == 0 else bounds[:, kk - 1 : kk] + 1
        s = _segment(prefix[:, kk], lo, bounds[:, kk : kk + 1], mode) + s
    return s[:, 0]


def _in_range(pos: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return (pos >= lo[:, None]) & (pos < hi[:, None])


def _tolerance(lengths: torch.Tensor, k: int, mode: int) -> torch.Tensor:
    """Tie tolerance per sequence, float32-rounded like ``tie_tolerance`` in C++."""
    scale = lengths.double() if mode == 0 else torch.full_like(lengths, k, dtype=torch.float64)
    return (1e-5 * scale).float()


def _first_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dim (0 if none)."""
    return mask.to(torch.uint8).argmax(-1)


def _sum_mode(prefix, anchors, tol) -> torch.Tensor:
    """Earliest boundary per k whose deficit to the best gain fits the remaining slack."""
    length = prefix.shape[-1] - 1
    pos = torch.arange(length, device=prefix.device)
    slack = tol.clone()
    bounds = []
    for kk in range(anchors.shape[1] - 1):
        gain = prefix[:, kk, 1:] - prefix[:, kk + 1, 1:]
        allowed = _in_range(pos, anchors[:, kk], anchors[:, kk + 1])
        gain = gain.masked_fill(~allowed, -torch.inf)
        best = gain.max(-1).values
        pick = _first_true(gain >= (best - slack)[:, None])
        slack = slack - (best - gain.gather(1, pick[:, None])[:, 0])
        bounds.append(pick)
    return torch.stack(bounds, dim=1)


def _mean_values(prefix, anchors, lengths, mode: int) -> list[torch.Tensor]:
    """Backward DP: values[kk][:, b] = best score of segments kk+1..K-1 given b_kk = b."""
    batch, k, stride = prefix.shape
    length = stride - 1
    pos = torch.arange(length, device=prefix.device)
    last = _segment(
        prefix[:, k - 1],
        (pos + 1).expand(batch, -1).clamp(max=length - 1),
        (lengths - 1)[:, None].expand(-1, length),
        mode,
    )
    value = last.masked_fill(~_in_range(pos, anchors[:, k - 2], anchors[:, k - 1]), -torch.inf)
    values = [value]
    block = max(1, _BLOCK_ELEMENTS // max(1, batch * length))
    for kk in range(k - 3, -1, -1):
        row = prefix[:, kk + 1]  # anchor of segment kk+1 = (b, nb]
        new_value = torch.full_like(value, -torch.inf)
        for start in range(0, length, block):
            b = pos[start : start + block]  # (J,)
            seg_sum = row[:, None, 1:] - row[:, b + 1, None]  # (B, J, L)
            seg_len = _segment_count(pos[None, :] - b[:, None], mode).to(prefix.dtype)  # (J, L)
            v = seg_sum / seg_len + value[:, None, :]  # over the next boundary nb
            new_value[:, start : start + block] = v.max(-1).values
        allowed = _in_range(pos, anchors[:, kk], anchors[:, kk + 1])
        value = new_value.masked_fill(~allowed, -torch.inf)
        values.append(value)
    values.reverse()
    return values


def _mean_mode(prefix, anchors, lengths, tol, mode: int):
    """Mean-mode boundaries (B, K-1): backward DP values, then the tie rule forward."""
    batch, k, stride = prefix.shape
    length = stride - 1
    pos = torch.arange(length, device=prefix.device)
    values = _mean_values(prefix, anchors, lengths, mode)
    zero = torch.zeros_like(pos).expand(batch, -1)
    first = _segment(prefix[:, 0], zero, pos.expand(batch, -1), mode)
    budget = (first + values[0]).max(-1).values - tol
    acc = torch.zeros(batch, dtype=prefix.dtype, device=prefix.device)
    prev = torch.full((batch,), -1, dtype=torch.long, device=prefix.device)
    bounds = []
    for kk in range(k - 1):
        lo = (prev + 1)[:, None].expand(-1, length)
        seg = _segment(prefix[:, kk], lo.clamp(max=length - 1), pos.expand(batch, -1), mode)
        allowed = _in_range(pos, anchors[:, kk], anchors[:, kk + 1])
        total = (acc[:, None] + (seg + values[kk])).masked_fill(~allowed, -torch.inf)
        ok = total >= budget[:, None]
        pick = torch.where(ok.any(-1), _first_true(ok), total.argmax(-1))
        acc = acc + seg.gather(1, pick[:, None])[:, 0]
        prev = pick
        bounds.append(pick)
    return torch.stack(bounds, dim=1)


def reference_impl(
    x: torch.Tensor, anchors: torch.Tensor, lengths: torch.Tensor, mode: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated inputs -> ``(boundaries (B, K-1) int64, scores (B,) float32)``.

    A sequence with NaN/inf within its valid length gets a NaN score and
    ``boundaries = anchors[:-1]``.
    """
    x = x.float()
    batch, length, _ = x.shape
    valid = torch.arange(length, device=x.device)[None, :] < lengths[:, None]
    prefix, finite = _prefix_sums(x, anchors, valid, mode)
    prefix = torch.where(finite[:, None, None], prefix, torch.zeros_like(prefix))
    tol = _tolerance(lengths, anchors.shape[1], mode)
    if mode == SUM:
        bounds = _sum_mode(prefix, anchors, tol)
    else:
        bounds = _mean_mode(prefix, anchors, lengths, tol, mode)
    scores = _tuple_score(prefix, bounds, lengths, mode)
    bounds = torch.where(finite[:, None], bounds, anchors[:, :-1])
    scores = scores.masked_fill(~finite, torch.nan)
    return bounds, scores
