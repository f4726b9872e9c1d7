"""sseg.deploy.batch.predict_many: many videos packed into large window batches."""

from __future__ import annotations

import pytest
import torch
from deploy_helpers import ATOL, DIM, random_videos, tiny_model

from sseg.deploy.batch import predict_many
from sseg.deploy.windows import WindowScorer, keyframe_windows

pytestmark = pytest.mark.usefixtures("one_thread")
# empty, shorter than half a window, one window, many batches, in between
LENGTHS = (0, 1, 2, 3, 7, 40, 90, 13)


@pytest.mark.parametrize("phi", ["identity", "softmax"])
@pytest.mark.parametrize("batch_size", [1, 5, 64, 256])
def test_predict_many_equals_per_video_predict(phi, batch_size):
    model = tiny_model(phi=phi)
    model.train()  # predict_many must score in eval mode (dropout off), as predict does
    videos = random_videos(LENGTHS)
    got = predict_many(model, videos, batch_size=batch_size)
    assert [p.shape for p in got] == [(n,) for n in LENGTHS]
    for keyframes, probs in zip(videos, got, strict=True):
        expected = model.predict(keyframes.float())
        assert probs.dtype == torch.float32 and probs.device.type == "cpu"
        torch.testing.assert_close(probs, expected, rtol=0, atol=ATOL)
    assert max(abs(p - 0.5).max().item() for p in got if len(p)) > 1e-3  # not a constant


def test_windows_from_the_padding_see_only_their_video():
    """A window at a video's edge must not see the neighbouring video in the same batch."""
    model = tiny_model(window=5)
    videos = random_videos((4, 4))
    alone = predict_many(model, videos[:1], batch_size=8)[0]
    packed = predict_many(model, [videos[0], 100 * videos[1]], batch_size=8)[0]
    torch.testing.assert_close(packed, alone, rtol=0, atol=ATOL)


def test_padded_shots_enter_the_model_as_zero_features():
    """With softmax phi a zero keyframe has a non-zero shot feature; padding must still be 0."""
    model = tiny_model(window=5, phi="softmax")
    keyframes = random_videos((3,))[0].float()
    windows, valid = keyframe_windows(keyframes, 5)
    assert windows.shape == (3, 5, 3, DIM) and valid.sum().item() == 9
    assert torch.equal(windows[0, :2], torch.zeros(2, 3, DIM))
    with torch.no_grad():
        probs = WindowScorer(model)(windows, valid)
    torch.testing.assert_close(probs, model.predict(keyframes), rtol=0, atol=ATOL)


def test_bad_videos_are_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="video 1: keyframes must be"):
        predict_many(model, [torch.zeros(3, 3, DIM), torch.zeros(3, DIM)])
    with pytest.raises(ValueError, match="video 2: keyframes are"):
        videos = [torch.zeros(3, 3, DIM), torch.zeros(0, 1, DIM), torch.zeros(2, 1, DIM)]
        predict_many(model, videos)
    with pytest.raises(ValueError, match="batch_size"):
        predict_many(model, [], batch_size=0)
    assert predict_many(model, []) == []
