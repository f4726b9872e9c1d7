"""Wrong weight files (pickles, TorchScript, junk) give one line that says what the file
is, as --model and as --clip-weights, and never advise unsafe loading."""

from __future__ import annotations

import argparse
import pickle
import warnings

import pytest
import torch

from sseg import checkpoint
from sseg.cli import main
from sseg.errors import InputError
from sseg.modeling.clip_backbone import load_clip
from sseg.modeling.context import ContextConfig
from sseg.modeling.model import SceneModel
from sseg.testing.videos import write_video


def _weights_files(folder):
    """name -> (path, kind) of every kind of wrong file a user may pass."""
    files = {}
    path = folder / "model_object.pt"  # a state dict with a pickled Python object in it
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1)}, path)
    files["object"] = (path, checkpoint.TORCH_ZIP)
    path = folder / "plain.pkl"
    path.write_bytes(pickle.dumps({"w": [1, 2]}, protocol=4))
    files["pickle"] = (path, checkpoint.PICKLE)
    path = folder / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's notice
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    files["torchscript"] = (path, checkpoint.TORCHSCRIPT)
    path = folder / "renamed.safetensors"  # a pickle wearing the wrong name
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1)}, path)
    files["renamed"] = (path, checkpoint.TORCH_ZIP)
    path = folder / "junk.bin"
    path.write_bytes(b"\x00\x01junk" * 10)
    files["junk"] = (path, checkpoint.UNKNOWN)
    return files


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory):
    return _weights_files(tmp_path_factory.mktemp("weights"))


def _assert_safe_one_line(text: str) -> None:
    assert len(text.strip().splitlines()) == 1, text
    assert "weights_only" not in text and "trust" not in text and "\x1b" not in text


def test_kinds_are_told_from_the_bytes(wrong_files, tmp_path):
    for path, kind in wrong_files.values():
        assert checkpoint.weights_file_kind(path) == kind, path.name
    real = tmp_path / "real.safetensors"
    checkpoint.save_checkpoint(real, {"w": torch.zeros(3)}, {"a": 1})
    assert checkpoint.weights_file_kind(real) == checkpoint.SAFETENSORS
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(real.read_bytes()[:20])
    assert checkpoint.weights_file_kind(truncated) == checkpoint.UNKNOWN


@pytest.mark.parametrize("name", ["object", "pickle", "torchscript", "renamed", "junk"])
def test_scene_model_errors_say_what_the_file_is(wrong_files, name):
    path, kind = wrong_files[name]
    with pytest.raises(InputError) as caught:
        SceneModel.load(path)
    message = str(caught.value)
    _assert_safe_one_line(message)
    assert message.startswith(f"{path}: ")
    if kind == checkpoint.UNKNOWN:
        assert "not a safetensors checkpoint" in message
    else:
        assert "not a safetensors checkpoint" in message and "never unpickles" in message


@pytest.mark.parametrize("name", ["object", "pickle", "torchscript", "renamed", "junk"])
def test_clip_weights_errors_say_what_the_file_is(wrong_files, name, recwarn):
    path, _ = wrong_files[name]
    with pytest.raises(InputError) as caught:
        load_clip(path)
    message = str(caught.value)
    _assert_safe_one_line(message)
    assert message.startswith(f"{path}: ")
    expected = {
        "object": "pickled Python objects",
        "pickle": "pickled Python objects",
        "renamed": "pickled Python objects",
        "torchscript": "TorchScript archive",
        "junk": "cannot read CLIP checkpoint",
    }[name]
    assert expected in message
    assert not [w for w in recwarn if "torch" in str(w.filename)]  # torch's notes hidden


def test_cli_pickles_as_model_and_clip_weights_exit_2_in_one_line(wrong_files, tmp_path, capsys):
    video = write_video(tmp_path / "v.mp4", [[6]], fps=10)
    out = tmp_path / "out"
    base = ["segment", str(video.path), "-o", str(out), "--detector", "content", "-q"]
    pickled = str(wrong_files["object"][0])
    assert main([*base, "--model", pickled]) == 2
    err = capsys.readouterr().err
    _assert_safe_one_line(err)
    assert "model_object.pt: is a PyTorch torch.save checkpoint" in err
    torch.manual_seed(1)
    model = tmp_path / "m.safetensors"
    SceneModel(torch.randn(21, 512), ContextConfig(512, hidden=32, heads=2, window=5)).save(model)
    assert main([*base, "--model", str(model), "--clip-weights", pickled]) == 2
    err = capsys.readouterr().err
    _assert_safe_one_line(err)
    assert "model_object.pt: cannot read CLIP checkpoint: it holds pickled" in err
    assert not out.exists() or list(out.iterdir()) == []
