"""Batched inference across many videos: their windows packed into large batches.

:func:`predict_many` scores every shot of every video with one call. Each video's
windows (one centred on each shot, zero-padded at the ends, as
:meth:`SceneModel.predict` forms them) are cut from the video's keyframes on the
scorer's device and packed, across video boundaries, into batches of ``batch_size``
windows, so short videos do not leave batches (and the GPU) mostly empty. Results come
back per video, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..modeling.model import SceneModel
from .windows import Scorer, as_scorer, keyframe_windows


def _check_videos(videos: Sequence[torch.Tensor]) -> tuple[int, int] | None:
    """(K, D) shared by all videos (None if there are no shots); ValueError otherwise."""
    shape = None
    for index, keyframes in enumerate(videos):
        if keyframes.ndim != 3:
            raise ValueError(f"video {index}: keyframes must be (N, K, D), got "
                             f"{tuple(keyframes.shape)}")  # fmt: skip
        if keyframes.shape[0] == 0:
            continue
        if shape is None:
            shape = tuple(keyframes.shape[1:])
        elif tuple(keyframes.shape[1:]) != shape:
            raise ValueError(f"video {index}: keyframes are {tuple(keyframes.shape[1:])} per "
                             f"shot, earlier videos {shape}")  # fmt: skip
    return shape


def predict_many(
    model: SceneModel | Scorer, videos: Sequence[torch.Tensor], batch_size: int = 256
) -> list[torch.Tensor]:
    """P(shot ends a scene) for every shot of every video.

    Args:
        model: a :class:`SceneModel` or a scorer (:mod:`sseg.deploy.windows`), e.g. a
            loaded exported program.
        videos: per video, (N_i, K, D) keyframe features (any float dtype, any device).
        batch_size: windows per scorer call.
    Returns:
        per video, (N_i,) float32 probabilities on the CPU, as :meth:`SceneModel.predict`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_videos(videos)
    scorer = as_scorer(model)
    results = [torch.zeros(0) for _ in videos]
    pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (video, windows, valid)
    filled = 0

    def score_pending() -> None:
        keyframes = torch.cat([windows for _, windows, _ in pending])
        valid = torch.cat([mask for _, _, mask in pending])
        probs = scorer(keyframes, valid).float().cpu()
        for (video, _windows, _), part in zip(
            pending, probs.split([w.shape[0] for _, w, _ in pending]), strict=True
        ):
            results[video] = torch.cat([results[video], part])

    with torch.no_grad():
        for video, keyframes in enumerate(videos):
            if keyframes.shape[0] == 0:
                continue
            keyframes = keyframes.to(scorer.device, torch.float32)
            windows, valid = keyframe_windows(keyframes, scorer.window)
            start = 0
            while start < windows.shape[0]:
                take = min(batch_size - filled, windows.shape[0] - start)
                pending.append((video, windows[start : start + take], valid[start : start + take]))
                filled += take
                start += take
                if filled == batch_size:
                    score_pending()
                    pending, filled = [], 0
        if pending:
            score_pending()
    return results
