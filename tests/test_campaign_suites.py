"""Suites (issue 15, part 1): named task groups validated like specs, run with one model into
one task x metric table and a suite.json; missing data skips a task, --strict refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.campaign.suites import load_suite, run_suite, suite_names, suite_table
from bench.cli import main
from bench.errors import DataError, SpecError
from bench.spec import load_spec, task_names


def test_shipped_suites_are_valid_and_cover_their_tasks():
    assert {"embedded", "real", "depth", "classification"} <= set(suite_names())
    embedded = load_suite("embedded").task_list()
    real = load_suite("real").task_list()
    assert sorted(embedded + real) == task_names()
    assert all(load_spec(t, check_metrics=False).dataset.embedded for t in embedded)
    assert load_suite("depth").task_list() == ["davis-depth", "kitti-depth", "nyu-depth",
                                               "synthetic-davis-depth", "synthetic-depth"]
    for name in suite_names():
        assert load_suite(name).task_list(), name


def test_a_bad_suite_names_every_problem_with_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("suite: bad\ndescription: x\ntasks:\n  - digits\n  - digitz\n"
                    "select:\n  families: [nope]\ncolour: red\n")
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    assert caught.value.errors == [f"{path}:8: colour: unknown key"]
    path.write_text("suite: bad\ndescription: x\ntasks:\n  - digits\n  - digitz\n"
                    "select:\n  families: [nope]\n")
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    first, second = caught.value.errors
    assert first.startswith(f"{path}:5: tasks.1: unknown task 'digitz'; did you mean digits")
    assert second.startswith(f"{path}:7: select.families.0: unknown family 'nope'")


@pytest.fixture()
def no_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data root holding the embedded digits (linked, read only) and no MNIST."""
    from bench.adapters.base import ensure_embedded

    digits = ensure_embedded("digits")
    root = tmp_path / "data"
    root.mkdir()
    (root / "digits").symlink_to(digits, target_is_directory=True)
    monkeypatch.setenv("ARBENCH_DATA", str(root))


@pytest.mark.usefixtures("no_mnist")
def test_a_suite_skips_missing_data_and_writes_one_table(tmp_path: Path):
    options = {"out_dir": tmp_path / "results", "leaderboard": False, "progress": False,
               "limit": 30, "overrides": None}
    run = run_suite(["digits", "synthetic-shapes", "mnist"], "logreg", suite="mine",
                    **options)
    assert run.left_out == ["synthetic-shapes"]
    assert [(o.task, o.status) for o in run.outcomes] == [("digits", "ok"),
                                                          ("mnist", "skipped")]
    assert "MNIST data root" in run.outcomes[1].reason and "\n" not in run.outcomes[1].reason
    assert not run.complete
    saved = json.loads(run.path.read_text())
    assert run.path.name == "suite.json" and saved["suite"] == "mine"
    digits = run.outcomes[0].result
    assert saved["tasks"][0]["run_id"] == digits.run_id
    assert saved["tasks"][0]["comparability_key"] == digits.comparability_key
    assert saved["tasks"][0]["metrics"] == digits.metrics
    assert saved["tasks"][1] == {"task": "mnist", "status": "skipped",
                                 "reason": run.outcomes[1].reason}
    table = suite_table(run).splitlines()
    assert table[2].startswith("| task | N | accuracy | top2_accuracy |")
    assert table[4].startswith(f"| digits | 30 | {digits.metrics['accuracy']:.4g}* |")
    assert table[5].startswith("| mnist |  |") and "skipped: MNIST data root" in table[5]
    assert suite_table(run, "csv").splitlines()[0].startswith("task,N,accuracy")
    assert "\\begin{tabular}" in suite_table(run, "latex")
    assert "<td>digits</td>" in suite_table(run, "html")
    with pytest.raises(DataError):
        run_suite(["digits", "mnist"], "logreg", strict=True, **options)


@pytest.mark.usefixtures("no_mnist")
def test_cli_suite_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture):
    common = ["--model", "logreg", "--limit", "20", "--no-leaderboard", "--out",
              str(tmp_path)]
    assert main(["run", "digits,digits", *common, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("task,N,accuracy")
    assert main(["run", "--suite", "classification", *common]) == 1  # mnist: no data
    assert main(["run", "--suite", "classification", "--strict", *common]) == 2
    assert "MNIST data root" in capsys.readouterr().err
