"""``sseg extract``: keyframe folders and a video -> feature store, resumable (random ViT)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sseg.cli import main
from sseg.features import FeatureStore


@pytest.fixture(scope="module")
def shared_encoder(tmp_path_factory):
    """One random-init backbone for every extraction here (loading it is the slow part)."""
    from sseg.extract import KeyframeEncoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSEG_CACHE_DIR", str(tmp_path_factory.mktemp("sseg-cache")))
        return KeyframeEncoder(None, "cpu", batch_size=8)


@pytest.fixture(autouse=True)
def _reuse_encoder(shared_encoder, monkeypatch):
    import sseg.extract

    def make(weights, device, batch_size, precision="fp32"):
        assert weights is None and device == "cpu" and precision == "fp32"
        return shared_encoder

    monkeypatch.setattr(sseg.extract, "KeyframeEncoder", make)


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
