"""``sseg extract``: keyframe folders and a video -> feature store, resumable (random ViT)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sseg.cli import main
from sseg.store.features import FeatureStore


@pytest.fixture(scope="module")
def shared_encoder(tmp_path_factory):
    """One random-init backbone for every extraction here (loading it is the slow part)."""
    from sseg.store.extract import KeyframeEncoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSEG_CACHE_DIR", str(tmp_path_factory.mktemp("sseg-cache")))
        return KeyframeEncoder(None, "cpu", batch_size=8)


@pytest.fixture(autouse=True)
def _reuse_encoder(shared_encoder, monkeypatch):
    import sseg.store.extract

    def make(weights, device, batch_size, precision="fp32"):
        assert weights is None and device == "cpu" and precision == "fp32"
        return shared_encoder

    monkeypatch.setattr(sseg.store.extract, "KeyframeEncoder", make)


def _folder(root, video_id, shots, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / video_id
    folder.mkdir(parents=True)
    for s in range(shots):
        colour = rng.integers(0, 256, size=3)
        for j in range(3):
            img = np.clip(colour + rng.integers(-20, 20, size=(40, 56, 3)), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(folder / f"shot_{s:04d}_img_{j}.jpg")
    return folder


def test_keyframe_folders_with_and_without_timings_and_resume(tmp_path, capsys):
    root = tmp_path / "keyframes"
    _folder(root, "tt01", 3, seed=1)
    _folder(root, "tt02", 2, seed=2)
    timings = tmp_path / "shots.jsonl"
    rows = [{"video": "tt01", "start": s, "end": e, "label": lab, "genres": ["Drama"]}
            for s, e, lab in [(0.0, 2.5, 0), (2.5, 3.0, 1), (3.0, 9.0, 0)]]  # fmt: skip
    timings.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store_dir = tmp_path / "store"
    args = ["extract", str(root), "--out", str(store_dir), "--random-init", "--device", "cpu",
            "--timings", str(timings), "--batch-size", "4", "--quiet"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "extracted 2 video(s)" in captured.out
    assert "no shot timings for 1 video(s) (e.g. tt02)" in captured.err

    store = FeatureStore(store_dir)
    assert store.video_ids == ["tt01", "tt02"] and (store.keyframes_per_shot, store.dim) == (3, 512)
    a = store.load("tt01")
    np.testing.assert_array_equal(a.starts, [0.0, 2.5, 3.0])
    np.testing.assert_array_equal(a.ends, [2.5, 3.0, 9.0])
    np.testing.assert_array_equal(a.labels, [0, 1, 0])
    assert a.genres == ["Drama"]
    b = store.load("tt02")
    np.testing.assert_array_equal(b.ends - b.starts, [1.0, 1.0])
    assert b.labels is None
    assert np.isfinite(a.keyframes).all() and np.abs(a.keyframes).sum() > 0
    assert not np.array_equal(a.keyframes[0], a.keyframes[1])  # different shots differ
    assert np.load(store_dir / "genre_bank.npy").shape == (21, 512)
    assert store.meta["backbone"].startswith("ViT-B-32")
    first = np.array(a.keyframes)

    # resume: a new video is added, stored ones are skipped and unchanged
    _folder(root, "tt03", 1, seed=1)  # same pixels as tt01's first shot
    assert main(args) == 0
    assert "extracted 1 video(s), skipped 2" in capsys.readouterr().out
    store = FeatureStore(store_dir)
    assert store.video_ids == ["tt01", "tt02", "tt03"]
    np.testing.assert_array_equal(store.load("tt01").keyframes, first)
    # deterministic up to float16 rounding (batch composition differs)
    np.testing.assert_allclose(store.load("tt03").keyframes[0], first[0], rtol=0, atol=2e-3)
    assert main(args) == 0  # nothing to do: the backbone is not even loaded
    assert "extracted 0 video(s), skipped 3" in capsys.readouterr().out


def test_bad_keyframe_folders_are_reported(tmp_path, capsys):
    folder = _folder(tmp_path / "kf", "tt09", 2)
    (folder / "shot_0001_img_2.jpg").unlink()
    args = ["extract", str(tmp_path / "kf"), "--out", str(tmp_path / "s"), "--random-init",
            "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "shot 1 needs images img_0..img_2" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["extract", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "s"),
                 "--random-init", "--quiet"]) == 2  # fmt: skip
    assert "not a video file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["extract", str(empty), "--out", str(tmp_path / "s"), "--random-init"]) == 2
    assert "no shot_XXXX_img_N.jpg" in capsys.readouterr().err


def test_video_input(tmp_path, capsys):
    from sseg.testing.videos import write_video

    video = write_video(tmp_path / "clip.mp4", [[12, 10], [14]], fps=10, size=(64, 48), seed=3)
    store_dir = tmp_path / "store"
    args = ["extract", str(video.path), "--out", str(store_dir), "--random-init",
            "--device", "cpu", "--detector", "content", "--quiet"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    store = FeatureStore(store_dir)
    v = store.load("clip")
    assert store.video_ids == ["clip"] and v.keyframes.shape[1:] == (3, 512)
    assert len(v) >= 2 and v.fps == 10.0
    assert v.starts[0] == 0.0 and v.ends[-1] == pytest.approx(3.6)
    assert (v.ends > v.starts).all()


def test_skip_bad_videos_and_decode_workers(tmp_path, capsys):
    root = tmp_path / "kf"
    _folder(root, "tt01", 3, seed=1)
    _folder(root, "tt02", 2, seed=2)
    broken_folder = _folder(root, "tt03", 2, seed=3)
    (broken_folder / "shot_0001_img_2.jpg").unlink()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    base = ["extract", str(root), str(broken), "--random-init", "--device", "cpu", "--quiet",
            "--batch-size", "4"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "strict")]) == 2  # the incomplete folder
    assert "shot 1 needs images" in capsys.readouterr().err
    (broken_folder / "shot_0001_img_2.jpg").write_bytes(b"garbage")  # complete, unreadable
    code = main([*base, "--out", str(tmp_path / "strict")])
    assert code == 2 and "cannot read keyframe image" in capsys.readouterr().err

    for workers in ("0", "1"):
        out = tmp_path / f"w{workers}"
        args = [*base, "--out", str(out), "--skip-bad-videos", "--workers", workers]
        assert main(args) == 0
        captured = capsys.readouterr()
        assert "extracted 2 video(s), skipped 0 already stored, 2 bad video(s) skipped" in (
            captured.out
        )
        assert "skipped bad video broken:" in captured.err and "broken.mp4" in captured.err
        assert "skipped bad video tt03:" in captured.err
        assert FeatureStore(out).video_ids == ["tt01", "tt02"]
    a, b = FeatureStore(tmp_path / "w0"), FeatureStore(tmp_path / "w1")
    for video_id in ("tt01", "tt02"):  # decoding in a worker changes nothing
        x, y = a.load(video_id).keyframes, b.load(video_id).keyframes
        assert np.array_equal(x.view(np.uint16), y.view(np.uint16))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_half_precision_features_match_fp32(shared_encoder, precision):
    """Autocast on CUDA (pinned, non-blocking inputs) keeps the features of fp32 on CPU."""
    import torch

    gpu = type(shared_encoder)(None, "cuda", batch_size=8, precision=precision)
    assert gpu.precision == precision
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8) for _ in range(10)]
    cpu_feats, gpu_feats = shared_encoder.encode(images), gpu.encode(images)
    assert gpu_feats.dtype == torch.float32 and gpu_feats.device.type == "cpu"
    cosine = torch.nn.functional.cosine_similarity(cpu_feats, gpu_feats)
    assert cosine.min() > 0.99
