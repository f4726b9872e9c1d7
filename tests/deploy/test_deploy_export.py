"""sseg.deploy.export and ``sseg export``: exported programs give predict's probabilities."""

from __future__ import annotations

import zipfile

import pytest
import torch
from deploy_helpers import ATOL, DIM, random_videos, tiny_model

from sseg.cli import main
from sseg.deploy.batch import predict_many
from sseg.deploy.export import (
    FORMAT,
    export_scene_model,
    export_to_file,
    load_scorer,
    save_program,
)
from sseg.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
LENGTHS = (1, 3, 40, 9)
# AOTInductor fuses elementwise ops and reorders reductions: a few float32 ulps.
AOTI_ATOL = 1e-5


def _assert_matches_predict(model, scorer, atol: float, batch_size: int = 16) -> None:
    videos = random_videos(LENGTHS)
    got = predict_many(scorer, videos, batch_size=batch_size)
    for keyframes, probs in zip(videos, got, strict=True):
        torch.testing.assert_close(probs, model.predict(keyframes.float()), rtol=0, atol=atol)


@pytest.mark.parametrize("phi", ["identity", "softmax"])
def test_exported_program_round_trip_matches_predict(phi, tmp_path):
    model = tiny_model(phi=phi)
    path = tmp_path / "model.pt2"
    meta = export_to_file(model, path, max_batch=8)
    assert meta["custom_ops"] == []  # CPU: AG-Residual traced as plain ATen ops
    scorer = load_scorer(path)
    assert (scorer.kind, scorer.window, scorer.keyframes, scorer.dim) == ("program", 7, 3, DIM)
    assert scorer.meta["model"]["phi"] == phi and scorer.meta["format"] == FORMAT
    # batches of 1 and larger than max_batch (scored in chunks) both match
    _assert_matches_predict(model, scorer, ATOL, batch_size=1)
    _assert_matches_predict(model, scorer, ATOL, batch_size=20)
    with pytest.raises(ValueError, match=r"keyframe windows must be \(B, 7, 3, 32\)"):
        scorer(torch.zeros(2, 5, 3, DIM), torch.ones(2, 5, dtype=torch.bool))


def test_triton_backend_exports_the_custom_op(tmp_path):
    """The Triton AG-Residual (interpreted here) stays one opaque op in the graph."""
    model = tiny_model(window=5)
    program, meta = export_scene_model(model, ag_backend="triton")
    assert meta["custom_ops"] == ["sseg.ag_residual.default"]
    path = save_program(program, meta, tmp_path / "triton.pt2")
    _assert_matches_predict(model, load_scorer(path), 1e-5)


def test_export_command_writes_a_verified_program(tmp_path, capsys):
    checkpoint = tmp_path / "model.safetensors"
    model = tiny_model(window=5)
    model.save(checkpoint)
    out = tmp_path / "out" / "scene.pt2"
    assert main(["export", "--model", str(checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "program for cpu, windows of 5 shots" in printed
    assert "max |exported - SceneModel.predict| = " in printed
    _assert_matches_predict(model, load_scorer(out), ATOL)
    assert [p.name for p in out.parent.iterdir()] == ["scene.pt2"]  # no temp files left


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        ("missing", [], "checkpoint file not found"),
        ("text", [], "not a safetensors checkpoint"),
        ("good", ["--out", "{tmp}/x.onnx"], "output must end in .pt2"),
        ("good", ["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"],
         "--device"),
        ("good", ["--device", "nonsense"], "--device"),
        ("good", ["--keyframes", "0"], "--keyframes must be at least 1"),
        ("good", ["--max-batch", "1"], "--max-batch must be at least 2"),
        ("good", ["--out", "{tmp}"], "output must end in .pt2"),
    ],
)  # fmt: skip
def test_export_command_bad_input_is_one_line_exit_2(tmp_path, capsys, make, extra, message):
    checkpoint = tmp_path / "model.safetensors"
    if make == "good":
        tiny_model(window=3).save(checkpoint)
    elif make == "text":
        checkpoint.write_text("not a model")
    args = ["export", "--model", str(checkpoint), "--out", str(tmp_path / "m.pt2")]
    args += [a.format(tmp=tmp_path) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "m.pt2").exists()


def test_load_scorer_refuses_other_files(tmp_path):
    with pytest.raises(InputError, match="exported model not found"):
        load_scorer(tmp_path / "none.pt2")
    text = tmp_path / "text.pt2"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an exported sseg model"):
        load_scorer(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("x/readme.txt", "hi")
    with pytest.raises(InputError, match="neither a torch.export program"):
        load_scorer(other)
    foreign = tmp_path / "foreign.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),)), foreign)
    with pytest.raises(InputError, match="not an exported sseg scene model"):
        load_scorer(foreign)


@pytest.mark.slow
def test_aoti_package_matches_predict(tmp_path, capsys):
    """AOTInductor on CPU: a C++ compile of the whole model (about a minute on 2 cores)."""
    checkpoint = tmp_path / "model.safetensors"
    model = tiny_model(window=5, phi="softmax")
    model.save(checkpoint)
    out = tmp_path / "scene-aoti.pt2"
    assert main(["export", "--model", str(checkpoint), "--out", str(out), "--aoti"]) == 0
    assert "aoti for cpu" in capsys.readouterr().out
    scorer = load_scorer(out)
    assert scorer.kind == "aoti" and scorer.meta["model"]["phi"] == "softmax"
    _assert_matches_predict(model, scorer, AOTI_ATOL, batch_size=7)
