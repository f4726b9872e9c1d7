"""Keyframe pictures: scaled in the decoder's pixel format, converted to RGB on demand."""

from __future__ import annotations

import numpy as np
import pytest

from sseg.segmentation.video import open_video


def _gradient_clip(path, pix_fmt: str, full_range: bool, bt709: bool = False) -> None:
    """Six smooth colour gradients (no hard edges: chroma subsampling stays exact-ish)."""
    import av

    height, width = 96, 160
    rows, cols = np.mgrid[0:height, 0:width]
    container = av.open(str(path), "w")
    try:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if full_range:
            stream.codec_context.color_range = 2  # JPEG (full) range
        if bt709:
            stream.codec_context.colorspace = 1  # ITU-R BT.709
        for t in range(6):
            rgb = np.stack(
                [cols * 255 / width, rows * 255 / height, (cols + rows + 10 * t) * 200 / 266], -1
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if full_range:
                frame.color_range = 2
            if bt709:
                frame.colorspace = 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


@pytest.mark.parametrize(
    ("pix_fmt", "full_range", "bt709"),
    [
        ("yuv420p", False, False),
        ("yuvj420p", True, False),
        ("yuv420p", True, True),  # flagged full range and BT.709, as phones write
        ("yuv420p10le", False, False),
    ],
)
def test_keyframe_pictures_keep_colours_and_equal_the_keyframe_pass(
    tmp_path, pix_fmt, full_range, bt709
):
    path = tmp_path / f"{pix_fmt}.mp4"
    try:
        _gradient_clip(path, pix_fmt, full_range, bt709)
    except Exception as exc:  # an encoder build without this pixel format
        pytest.skip(f"cannot encode {pix_fmt}: {exc}")
    video = open_video(path)
    size = (80, 48)
    keyframes = [f.rgb for f in video.frames(size, keyframe=True)]
    pictures = [f.keyframe for f in video.frames((16, 10), draft=True, keyframe_size=size)]
    full = [f.rgb for f in video.frames()]  # native size, converted to RGB unscaled
    assert len(keyframes) == len(pictures) == len(full) == 6
    for keyframe, picture, rgb in zip(keyframes, pictures, full, strict=True):
        assert keyframe.shape == (48, 80, 3)
        assert np.array_equal(picture.rgb(), keyframe)  # the one pass = the keyframe pass
        # The source's colour matrix and range are kept: close to a float downscale of
        # the full-size RGB frame (a range or matrix mix-up shifts colours by several levels).
        reference = _downscale(rgb, (48, 80))
        assert np.abs(keyframe - reference).mean() < 2.0
        assert np.abs(keyframe.mean((0, 1)) - reference.mean((0, 1))).max() < 1.0
    if pix_fmt != "yuv420p10le":  # 8-bit 4:2:0: about half the bytes of RGB to keep
        assert pictures[0].nbytes < 0.6 * keyframes[0].nbytes


def _downscale(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).numpy()
