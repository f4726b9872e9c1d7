"""``sseg ablate`` as the paper's table: rows over seeds on a tiny proxy, resumable runs."""

from __future__ import annotations

import json

import pytest

from sseg.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    args = ["ablate", "--proxy", "--proxy-scale", "0.05", "--out", str(out), "--seeds", "2"]
    args += ["--rows", "full,no_pretrain,split_10,token_concat", "--pretrain-steps", "2"]
    args += ["--finetune-steps", "3", "--hidden", "16", "--jobs", "2"]
    assert main(args) == 0
    return out, args


def test_table_has_the_requested_rows_baselines_and_paper_numbers(table):
    out, _ = table
    report = json.loads((out / "ablation.json").read_text())
    names = [row["name"] for row in report["rows"]]
    baselines = ["baseline_neighbour_cosine", "baseline_context_rule", "baseline_random"]
    assert names == ["full", "no_pretrain", "split_10", "token_concat", *baselines]
    for row in report["rows"]:
        assert [s["seed"] for s in row["seeds"]] == [0, 1]
        for key in ("ap_mean", "ap_std", "f1_mean", "miou_mean"):
            assert 0.0 <= row[key] <= 100.0, (row["name"], key)
    full = report["rows"][0]
    assert full["paper"]["AP"] == pytest.approx(63.62)
    assert (
        report["videos"]["test"] >= 1 and report["videos"]["pretrain"] > report["videos"]["train"]
    )
    markdown = (out / "ablation.md").read_text()
    assert "| full |" in markdown and "| baseline_random |" in markdown
    # split_10 scores the full model's runs: no training of its own
    assert not (out / "runs" / "split_10").exists()
    assert (
        out / "runs" / "pre-ag_residual-definition-idw" / "seed1" / "metrics_tau-10.json"
    ).is_file()


def test_a_second_run_reuses_every_finished_run(table, capsys):
    out, args = table
    before = (out / "ablation.json").read_text()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pre-train pre-" not in printed and "fine-tune pre-" not in printed
    assert json.loads((out / "ablation.json").read_text()) == json.loads(before)


def test_bad_rows_and_missing_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["ablate", "--out", str(tmp_path), "--proxy", "--rows", "full,nope"]) == 2
    assert "unknown row(s) nope" in capsys.readouterr().err
    assert main(["ablate", "--out", str(tmp_path)]) == 2
    assert "needs --proxy" in capsys.readouterr().err
