"""The user workflow end to end through the CLI, as docs/tutorial.md chains it.

Generated videos with known cuts and scenes -> ``sseg extract`` (random-init CLIP,
content detector) -> ``sseg pretrain`` (tiny context model) -> ``sseg finetune``
(JSON-lines labels, ``--init``, ``--resume``) -> ``sseg evaluate`` / ``sseg ablate``
-> ``sseg segment`` with the fine-tuned model. Each step's artefact is the next
step's input, so a format or flag that does not fit between two parts fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sseg.checkpoint import load_checkpoint
from sseg.cli import main
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.store import extract as extract_module
from sseg.store.features import FeatureStore
from sseg.testing.videos import GeneratedVideo, write_video

FPS = 10
# Shot lengths in frames, grouped by scene; a, b train, c is held out.
SCENES = {
    "a": [[8, 9], [10, 8], [9, 8]],
    "b": [[9, 8], [8, 10, 9]],
    "c": [[10, 8], [8, 9], [9, 8]],
}
DETECT = ["--detector", "content", "--min-shot-len", "3"]
METRICS = ("AP", "F1", "mIoU", "Recall", "Recall@3s")


def annotation_rows(video_id: str, video: GeneratedVideo) -> list[dict]:
    """One JSON-lines object per shot: times from the known cuts, label 1 before a scene cut.

    The last shot is unlabelled (``null``), as in MovieNet: the end of a video is not
    a boundary to predict.
    """
    bounds = [*video.shot_starts, video.num_frames]
    rows = []
    for i in range(len(video.shot_starts)):
        last = i == len(video.shot_starts) - 1
        rows.append(
            {
                "video": video_id,
                "start": bounds[i] / FPS,
                "end": bounds[i + 1] / FPS,
                "label": None if last else int(bounds[i + 1] in video.scene_starts),
                "genres": ["Drama"],
                "fps": FPS,
            }
        )
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Videos, their JSON-lines annotation and a split file, in one folder."""
    root = tmp_path_factory.mktemp("workflow")
    videos = {
        vid: write_video(root / f"{vid}.mp4", scenes, fps=FPS, seed=i)
        for i, (vid, scenes) in enumerate(SCENES.items())
    }
    rows = [row for vid, video in videos.items() for row in annotation_rows(vid, video)]
    labels = root / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = root / "split.json"
    split.write_text(json.dumps({"train": ["a", "b"], "test": ["c"]}))
    return {"root": root, "videos": videos, "labels": labels, "split": split}


def _run(argv: list[str]) -> None:
    assert main([str(a) for a in argv]) == 0, argv


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in SceneModel.load(path).state_dict().items()}


@pytest.mark.filterwarnings("error::sseg.data.annotations.ShotTimesWarning")
def test_videos_to_finetuned_model_to_scenes(corpus, monkeypatch, capsys):
    root, videos = corpus["root"], corpus["videos"]
    monkeypatch.setenv("SSEG_CACHE_DIR", str(root / "cache"))
    monkeypatch.chdir(root)
    inputs = [str(v.path) for v in videos.values()]
    labels, split = corpus["labels"], corpus["split"]

    # b. extract: the store holds exactly the generated cuts, with the annotation's times.
    # Labels of video files are not stored (the shots come from the detector): a note says so.
    _run(["extract", *inputs, "--out", "feats", "--random-init", "--device", "cpu", *DETECT,
          "--timings", labels, "--quiet"])  # fmt: skip
    assert "annotations for 3 video file(s) (e.g. a) are not stored" in capsys.readouterr().err
    store = FeatureStore(root / "feats")
    assert store.video_ids == ["a", "b", "c"]
    for vid, video in videos.items():
        feats = store.load(vid)
        assert feats.keyframes.shape == (len(video.shot_starts), 3, 512)
        np.testing.assert_allclose(feats.starts * FPS, video.shot_starts, atol=1e-6)
        assert feats.ends[-1] * FPS == pytest.approx(video.num_frames)
        assert feats.fps == FPS and feats.labels is None
    assert (root / "feats" / "genre_bank.npy").is_file()

    # ... and resumes: a second run adds nothing and does not even load the backbone.
    index = (root / "feats" / "index.json").read_bytes()

    def no_backbone(*args, **kwargs):
        raise AssertionError("backbone loaded although every video is stored")

    monkeypatch.setattr(extract_module, "KeyframeEncoder", no_backbone)
    capsys.readouterr()
    _run(["extract", *inputs, "--out", "feats", "--random-init", "--device", "cpu", *DETECT,
          "--quiet"])  # fmt: skip
    assert "extracted 0 video(s), skipped 3" in capsys.readouterr().out
    assert (root / "feats" / "index.json").read_bytes() == index

    # c. pretrain a tiny context model on the cached features.
    config = {
        "store": "feats", "out_dir": "runs/pretrain", "window": 5, "anchors": 2,
        "hidden": 32, "heads": 2, "layers": 1, "proj_dim": 16, "dropout": 0.0,
        "batch_size": 4, "steps": 4, "warmup_steps": 1, "checkpoint_every": 2,
        "log_every": 1, "device": "cpu",
    }  # fmt: skip
    (root / "cfg.json").write_text(json.dumps(config))
    _run(["pretrain", "--config", "cfg.json", "--quiet"])
    pretrained = root / "runs" / "pretrain" / "model.safetensors"
    summary = json.loads((root / "runs" / "pretrain" / "pretrain_summary.json").read_text())
    assert summary["steps"] == 4 and summary["videos"] == 3
    assert np.isfinite(summary["last_loss"])
    model = SceneModel.load(pretrained)
    assert model.boundary.encoder.config.hidden == 32
    assert model.boundary.encoder.config.window == 5
    # The model records the backbone its features came from.
    assert store.meta["backbone"] == "ViT-B-32:random-seed0"
    assert model.meta["backbone"] == store.meta["backbone"]
    assert model.meta["backbone_weights"] == store.meta["backbone_weights"]

    # d. finetune from it with the JSON-lines labels, then resume to more steps.
    finetune = ["finetune", "--features", "feats", "--labels", labels, "--split", split,
                "--init", pretrained, "--batch-size", "4", "--checkpoint-every", "2",
                "--no-progress", "--device", "cpu", "--pos-weight", "auto"]  # fmt: skip
    _run([*finetune, "--out", "runs/ft", "--steps", "3"])
    _run([*finetune, "--out", "runs/ft", "--steps", "6", "--resume"])
    finetuned = root / "runs" / "ft" / "model.safetensors"
    _, state = load_checkpoint(root / "runs" / "ft" / "train_state.safetensors")
    assert state["step"] == 6
    assert "labelled shots" in capsys.readouterr().out
    # Resuming reproduces the uninterrupted run.
    _run([*finetune, "--out", "runs/ft-once", "--steps", "6"])
    once, resumed = _weights(root / "runs" / "ft-once" / "model.safetensors"), _weights(finetuned)
    assert once.keys() == resumed.keys()
    for key in once:
        np.testing.assert_allclose(resumed[key], once[key], atol=1e-6, err_msg=key)
    ft_model = SceneModel.load(finetuned)
    assert ft_model.boundary.encoder.config.hidden == 32 and "pretrained" in ft_model.meta
    assert ft_model.meta["backbone_weights"] == store.meta["backbone_weights"]
    assert not np.allclose(_weights(pretrained)["boundary.head.mlp.2.weight"],
                           resumed["boundary.head.mlp.2.weight"])  # fmt: skip

    # e. evaluate on the held-out video, and the tau ablation.
    _run(["evaluate", "--model", finetuned, "--features", "feats", "--labels", labels,
          "--split", split, "--device", "cpu", "--json", "eval.json",
          "--save-predictions", "preds.jsonl"])  # fmt: skip
    report = json.loads((root / "eval.json").read_text())
    n_test = len(videos["c"].shot_starts)
    assert report["metrics"]["videos"] == 1 and report["metrics"]["shots"] == n_test - 1
    assert report["metrics"]["boundaries"] == len(videos["c"].scene_starts) - 1
    for name in METRICS:
        assert 0.0 <= report["metrics"][name] <= 1.0, name
    preds = [json.loads(line) for line in (root / "preds.jsonl").read_text().splitlines()]
    assert sorted(p["shot"] for p in preds if p["video"] == "c") == list(range(n_test))
    # Scoring the saved predictions against the annotation alone gives the same AP.
    _run(["evaluate", "--predictions", "preds.jsonl", "--labels", labels, "--split", split,
          "--json", "eval-preds.json"])  # fmt: skip
    again = json.loads((root / "eval-preds.json").read_text())["metrics"]
    assert again["AP"] == pytest.approx(report["metrics"]["AP"])

    # A model trained on features of other backbone weights is refused.
    ft_model.meta["backbone_weights"] = "0" * 16
    ft_model.save(root / "other-backbone.safetensors")
    capsys.readouterr()
    argv = ["evaluate", "--model", root / "other-backbone.safetensors", "--features", "feats",
            "--labels", labels, "--split", split, "--device", "cpu"]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    assert "other weights" in capsys.readouterr().err

    _run(["ablate", "--model", finetuned, "--features", "feats", "--labels", labels,
          "--split", split, "--device", "cpu", "--taus", "none,0.5",
          "--json", "ablate.json"])  # fmt: skip
    results = json.loads((root / "ablate.json").read_text())["results"]
    assert [r["tau"] for r in results] == [None, 0.5]
    assert results[0]["shots_split"] == 0 and results[1]["shots_split"] == n_test
    for result in results:
        for name in METRICS:
            assert 0.0 <= result[name] <= 1.0, name

    # f. segment the held-out video with the fine-tuned model.
    _run(["segment", videos["c"].path, "--model", finetuned, "--clip-weights", "random",
          "-o", "scenes", "--json", "--device", "cpu", "-q", *DETECT])  # fmt: skip
    data = json.loads((root / "scenes" / "c.scenes.json").read_text())
    shots, scenes = data["shots"], data["scenes"]
    assert [s["start_frame"] for s in shots] == videos["c"].shot_starts
    assert len(shots) == store.num_shots("c")
    assert all(0.0 <= s["boundary_probability"] <= 1.0 for s in shots)
    assert scenes[0]["start_frame"] == 0
    assert scenes[-1]["end_frame"] == videos["c"].num_frames
    for prev, nxt in zip(scenes, scenes[1:], strict=False):
        assert prev["end_frame"] == nxt["start_frame"]
    assert [i for scene in scenes for i in scene["shots"]] == list(range(len(shots)))
    # Same backbone, preprocessing and model as extract + evaluate: the same probabilities
    # (up to the store's float16 features).
    stored = {p["shot"]: p["prob"] for p in preds if p["video"] == "c"}
    segmented = [s["boundary_probability"] for s in shots]
    np.testing.assert_allclose(segmented, [stored[i] for i in range(n_test)], atol=2e-3)

    # With test-time splitting of every shot (tau 0.5 s) both still agree shot for shot.
    _run(["evaluate", "--model", finetuned, "--features", "feats", "--labels", labels,
          "--split", split, "--device", "cpu", "--tau", "0.5",
          "--save-predictions", "preds-split.jsonl"])  # fmt: skip
    _run(["segment", videos["c"].path, "--model", finetuned, "--clip-weights", "random",
          "-o", "scenes-split", "--json", "--device", "cpu", "-q", "--tau", "0.5",
          *DETECT])  # fmt: skip
    lines = (root / "preds-split.jsonl").read_text().splitlines()
    split_preds = {p["shot"]: p["prob"] for p in map(json.loads, lines) if p["video"] == "c"}
    split_shots = json.loads((root / "scenes-split" / "c.scenes.json").read_text())["shots"]
    split_probs = [s["boundary_probability"] for s in split_shots]
    np.testing.assert_allclose(split_probs, [split_preds[i] for i in range(n_test)], atol=2e-3)
    assert not np.allclose(split_probs, segmented, atol=1e-4)  # splitting changed something


def test_extract_rejects_a_bad_min_shot_len(tmp_path, capsys):
    video = write_video(tmp_path / "v.mp4", [[5, 5]], fps=FPS)
    argv = ["extract", str(video.path), "--out", str(tmp_path / "f"), "--random-init",
            "--detector", "content", "--min-shot-len", "0"]  # fmt: skip
    assert main(argv) == 2
    assert "--min-shot-len" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def write_movienet(root: Path, scenes: dict[str, list[list[int]]]) -> Path:
    """A MovieNet-style corpus: keyframe folders plus an annotation root.

    ``scenes[video]`` lists shot lengths (frames at 24 fps) per scene. Writes
    ``keyf/<id>/shot_XXXX_img_{0,1,2}.jpg`` (each shot rendered with one look per scene)
    and ``ann/`` with ``shot_movie318/``, ``label318/`` (N-1 lines), ``meta/`` and
    ``split318.json`` (the last video is the test split). Returns ``ann/``.
    """
    from PIL import Image

    from sseg.testing.videos import random_look, random_style, render

    ann = root / "ann"
    for sub in ("shot_movie318", "label318", "meta"):
        (ann / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for vid, video_scenes in scenes.items():
        folder = root / "keyf" / vid
        folder.mkdir(parents=True)
        shot_lines, label_lines, frame, shot = [], [], 0, 0
        for lengths in video_scenes:
            look = random_look(rng)
            for j, length in enumerate(lengths):
                style = random_style(rng, shot)
                for k in range(3):
                    image = render(look, style, (2 * k + 1) * length // 6, 64, 48)
                    Image.fromarray(image).save(folder / f"shot_{shot:04d}_img_{k}.jpg")
                shot_lines.append(f"{frame} {frame + length - 1} 0 0 0")
                last_of_scene = j == len(lengths) - 1
                label_lines.append(f"{shot:04d} {int(last_of_scene)}")
                frame, shot = frame + length, shot + 1
        (ann / "shot_movie318" / f"{vid}.txt").write_text("\n".join(shot_lines) + "\n")
        (ann / "label318" / f"{vid}.txt").write_text("\n".join(label_lines[:-1]) + "\n")
        (ann / "meta" / f"{vid}.json").write_text(json.dumps({"genres": ["Drama", "Crime"]}))
    ids = list(scenes)
    split = {"train": ids[:-1], "val": [], "test": ids[-1:]}
    (ann / "split318.json").write_text(json.dumps(split))
    return ann


def test_movienet_keyframe_folders_to_metrics(tmp_path, monkeypatch, capsys):
    """Keyframe folders + MovieNet annotations: labels travel in the store."""
    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    scenes = {"tt0000001": [[30, 40], [24, 36]], "tt0000002": [[48, 24], [30, 30, 24]]}
    ann = write_movienet(tmp_path, scenes)
    _run(["extract", "keyf", "--movienet", ann, "--out", "feats", "--random-init",
          "--device", "cpu", "--quiet"])  # fmt: skip
    assert "no shot timings" not in capsys.readouterr().err
    store = FeatureStore(tmp_path / "feats")
    first = store.load("tt0000001")
    np.testing.assert_allclose(first.starts * 24, [0, 30, 70, 94])
    np.testing.assert_allclose(first.ends * 24, [30, 70, 94, 130])
    assert first.labels.tolist() == [0, 1, 0, -100]
    assert first.genres == ["Drama", "Crime"]

    # A new model on the store's genre bank, store labels, MovieNet split.
    _run(["finetune", "--features", "feats", "--split", ann / "split318.json", "--out", "ft",
          "--steps", "3", "--batch-size", "4", "--hidden", "16", "--heads", "2",
          "--layers", "1", "--window", "3", "--no-progress", "--device", "cpu"])  # fmt: skip
    assert "on 1 videos, 3 labelled shots" in capsys.readouterr().out
    model = tmp_path / "ft" / "model.safetensors"
    assert SceneModel.load(model).boundary.encoder.config.window == 3

    # Store labels and the MovieNet root's labels give the same report.
    reports = []
    for extra in ([], ["--labels", ann]):
        _run(["evaluate", "--model", model, "--features", "feats", "--split", ann,
              "--device", "cpu", "--json", "eval.json", *extra])  # fmt: skip
        reports.append(json.loads((tmp_path / "eval.json").read_text())["metrics"])
    assert reports[0] == reports[1]
    assert reports[0]["videos"] == 1 and reports[0]["shots"] == 4
    assert reports[0]["boundaries"] == 1
    for name in METRICS:
        assert 0.0 <= reports[0][name] <= 1.0, name


def test_jsonl_labels_with_other_shot_times_warn(make_synthetic_store, tmp_path):
    """Labels are matched by shot index; shot times that disagree with the store say so."""
    import warnings

    from sseg.data.annotations import ShotTimesWarning, load_labels
    from sseg.data.jsonl import write_jsonl

    store = make_synthetic_store(2, shots=(6, 9), dim=8, seed=1)
    sequences = [store.load(v).to_shot_sequence() for v in store.video_ids]
    same = tmp_path / "same.jsonl"
    write_jsonl(same, sequences)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = load_labels(same, store)
    assert sorted(labels) == sorted(store.video_ids)

    shifted = sequences[1]
    shifted.starts[3:] += 0.2
    shifted.ends[2:] += 0.2
    moved = tmp_path / "moved.jsonl"
    write_jsonl(moved, sequences)
    pattern = rf"'{shifted.video_id}': times of {len(shifted) - 2} shot\(s\) differ.*first shot 2:"
    with pytest.warns(ShotTimesWarning, match=pattern):
        again = load_labels(moved, store)
    for vid in store.video_ids:
        np.testing.assert_array_equal(again[vid], labels[vid])


def test_store_resumes_with_the_same_weights_from_another_file(tmp_path, monkeypatch):
    """A copied or touched checkpoint gets another backbone id (path, mtime); the store
    still resumes because the weights fingerprint matches. Other weights are refused."""
    from PIL import Image

    from sseg.errors import InputError
    from sseg.store.extract import KeyframeEncoder, extract

    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "cache"))
    for vid, value in (("v1", 40), ("v2", 200), ("v3", 120)):
        (tmp_path / vid).mkdir()
        for k in range(3):
            image = np.full((32, 32, 3), value + 10 * k, np.uint8)
            Image.fromarray(image).save(tmp_path / vid / f"shot_0000_img_{k}.jpg")
    encoder = KeyframeEncoder(None, "cpu", 8)
    store = tmp_path / "feats"

    def run(vid: str) -> list[str]:
        return extract([tmp_path / vid], store, lambda: encoder, progress=False).added

    assert run("v1") == ["v1"]
    first_id = encoder.model_id
    encoder.model_id = "ViT-B-32:/elsewhere/ViT-B-32.pt:1:2"  # same weights, other file
    assert run("v2") == ["v2"]
    meta = FeatureStore(store).meta
    assert meta["backbone"] == first_id
    assert meta["backbone_weights"] == encoder.weights_fingerprint
    encoder.weights_fingerprint = "0" * 16  # other weights
    with pytest.raises(InputError, match="store was extracted with backbone"):
        run("v3")
    assert FeatureStore(store).video_ids == ["v1", "v2"]


def test_segment_refuses_a_model_of_other_backbone_weights(tmp_path, monkeypatch):
    import sseg
    from sseg.errors import InputError

    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "cache"))
    video = write_video(tmp_path / "v.mp4", [[8, 9], [10, 8]], fps=FPS, seed=2)
    bank = torch.nn.functional.normalize(torch.randn(21, 512), dim=-1)
    cfg = ContextConfig(input_dim=512, hidden=16, heads=2, layers=1, window=5, dropout=0.0)
    meta = {"backbone": "ViT-B-32:/elsewhere/other.pt:1:2", "backbone_weights": "0" * 16}
    SceneModel(bank, cfg, meta=meta).save(tmp_path / "m.safetensors")
    with pytest.raises(InputError):
        sseg.segment(video.path, model=tmp_path / "m.safetensors", clip_weights="random",
                     detector="content", min_shot_frames=3, quiet=True)  # fmt: skip


def test_segment_picks_the_random_init_backbone_a_model_names(tmp_path, monkeypatch):
    import sseg
    from sseg.errors import InputError

    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "cache"))
    video = write_video(tmp_path / "v.mp4", [[8, 9], [10, 8]], fps=FPS, seed=2)
    bank = torch.nn.functional.normalize(torch.randn(21, 512), dim=-1)
    cfg = ContextConfig(input_dim=512, hidden=16, heads=2, layers=1, window=5, dropout=0.0)
    options = {"detector": "content", "min_shot_frames": 3, "quiet": True}
    SceneModel(bank, cfg, meta={"backbone": "ViT-B-32:random-seed0"}).save(
        tmp_path / "r.safetensors"
    )
    result = sseg.segment(video.path, model=tmp_path / "r.safetensors", **options)
    assert len(result.probabilities) == len(result.shots) == 4
    SceneModel(bank, cfg, meta={"backbone": "ViT-B-32:/w/clip.pt:1:2"}).save(
        tmp_path / "w.safetensors"
    )
    with pytest.raises(InputError, match="--clip-weights"):
        sseg.segment(video.path, model=tmp_path / "w.safetensors", **options)
