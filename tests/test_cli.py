"""The command line: exit codes, one-line errors, and each command's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_registry(capsys) -> None:
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for word in ("digits", "mnist", "accuracy", "lecture-cnn", "logreg", "embedded"):
        assert word in out


def test_validate_reports_every_error(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("task: Bad Name\nversion: 0\nfamily: classification\n")
    code, _, err = run_cli(capsys, "validate", str(spec))
    assert code == 2
    lines = err.strip().splitlines()
    assert f"{spec}:1: task: String should match pattern" in lines[0]
    assert any(line.startswith(f"{spec}:2: version:") for line in lines)
    assert lines[-1].startswith("arbench: ") and "error(s)" in lines[-1]


def test_validate_good_spec_runs_one_sample(capsys) -> None:
    code, out, _ = run_cli(capsys, "validate", "digits")
    assert code == 0
    assert "valid" in out and "smoke run ok: 1 sample through mnist and lecture-cnn" in out


def test_errors_are_one_line_with_exit_2(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "run", "digits", "--model", "lenett5",
                             "--leaderboard-dir", str(tmp_path), "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("arbench: error: cannot resolve model 'lenett5'")
    code, _, err = run_cli(capsys, "run", "digitz", "--model", "lenet5")
    assert code == 2 and "did you mean digits?" in err
    with pytest.raises(BenchError):
        main(["--debug", "run", "digitz", "--model", "lenet5"])


def test_run_table_and_compare(capsys, tmp_path: Path) -> None:
    boards, out_dir = str(tmp_path / "boards"), str(tmp_path / "results")
    code, out, _ = run_cli(capsys, "run", "digits", "--model", "baseline:logreg",
                           "--leaderboard-dir", boards, "--out", out_dir, "--limit", "120")
    assert code == 0 and "accuracy *" in out and "samples/s" in out
    code, out, _ = run_cli(capsys, "compare", "digits", "--models", "logreg", "lenet5",
                           "--leaderboard-dir", boards, "--out", out_dir, "--limit", "120")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| model | accuracy ↑ |")
    assert lines[0].endswith("| accuracy vs logreg |")
    assert "(reference)" in out and "N=120" in out
    code, out, _ = run_cli(capsys, "table", "digits", "--leaderboard-dir", boards,
                           "--format", "latex")
    assert code == 0 and out.startswith(r"\begin{tabular}")
    code, _, err = run_cli(capsys, "table", str(tmp_path / "none.csv"))
    assert code == 2 and "no leaderboard at" in err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_train_writes_weights(capsys, tmp_path: Path) -> None:
    weights = tmp_path / "logreg.pt"
    code, out, _ = run_cli(capsys, "train", "logreg", "--out", str(weights), "--epochs", "50")
    assert code == 0 and weights.is_file() and str(weights) in out
    code, _, err = run_cli(capsys, "train", "logreg", "--task", "mnist",
                           "--set", f"dataset.root={tmp_path / 'nothing'}")
    assert code == 2 and "does not exist" in err


def test_compare_finds_a_model_file_again_by_its_reference(capsys, tmp_path: Path,
                                                           monkeypatch) -> None:
    import nets
    import torch

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scripted = tmp_path / "my_model.ts"
    torch.jit.script(nets.tiny_cnn().eval()).save(str(scripted))
    boards, out_dir = str(tmp_path / "boards"), str(tmp_path / "results")
    args = ["compare", "digits", "--models", "logreg", "my_model.ts", "--leaderboard-dir",
            boards, "--out", out_dir, "--limit", "40"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "| my_model |" in out
    rows = (tmp_path / "boards" / "digits.csv").read_text().splitlines()
    code, again, _ = run_cli(capsys, *args)
    assert code == 0 and "| my_model |" in again
    assert (tmp_path / "boards" / "digits.csv").read_text().splitlines() == rows  # no rerun
    torch.manual_seed(1)
    torch.jit.script(nets.tiny_cnn().eval()).save(str(scripted))  # other weights: scored anew
    code, _, _ = run_cli(capsys, *args)
    assert len((tmp_path / "boards" / "digits.csv").read_text().splitlines()) == len(rows) + 1
