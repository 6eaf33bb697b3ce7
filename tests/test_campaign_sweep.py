"""Sweeps (issue 15, part 4): models x tasks as submitit jobs on its local executor, two at
a time, gathered into one table; a second call runs nothing that is already done."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.campaign.sweep import run_sweep, sweep_table
from bench.results import read_leaderboard_rows
from bench.runner import evaluate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def importable_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's local jobs are fresh Python processes: they import this checkout."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{path}" if path else str(REPO))


def test_sweep_runs_each_cell_once_and_gathers_one_table(tmp_path: Path):
    options = {"out_dir": tmp_path / "results", "leaderboard_dir": tmp_path / "boards",
               "limit": 20, "jobs": 2, "progress": False}
    sweep = run_sweep(["logreg", "baseline:lenet5", "pointnet"], ["digits"], **options)
    assert [(c.model, c.status) for c in sweep.cells] == [("logreg", "ok"),
                                                         ("baseline:lenet5", "ok")]
    assert sweep.left_out == [("pointnet", "digits")]  # a point-cloud model
    _, rows = read_leaderboard_rows(tmp_path / "boards" / "digits.csv")
    assert sorted(row["model"] for row in rows) == ["lenet5", "logreg"]
    for cell in sweep.cells:
        alone = evaluate("digits", cell.model, limit=20, leaderboard=False, progress=False,
                         out_dir=tmp_path / "alone")
        assert cell.value == alone.primary
        assert cell.key == alone.comparability_key

    again = run_sweep(["logreg", "baseline:lenet5"], ["digits"], **options)
    assert [c.status for c in again.cells] == ["done", "done"]
    assert [c.value for c in again.cells] == [c.value for c in sweep.cells]
    assert len(read_leaderboard_rows(tmp_path / "boards" / "digits.csv")[1]) == 2
    table = sweep_table(again)
    assert table.splitlines()[0] == "| model | digits (accuracy) |"
    assert f"| logreg | {sweep.cells[0].value:.4g} |" in table
    assert sweep_table(again, "csv").splitlines()[1] == f"logreg,{sweep.cells[0].value:.4g}"


def test_a_failed_job_is_listed_with_its_log(tmp_path: Path):
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    sweep = run_sweep(["logreg"], ["mnist"], out_dir=tmp_path / "results",
                      leaderboard_dir=tmp_path / "boards", overrides=[f"dataset.root={empty}"],
                      jobs=2, progress=False)
    (cell,) = sweep.failed
    assert "MNIST" in cell.reason or "mnist" in cell.reason
    assert Path(cell.log).is_file() and "Traceback" in Path(cell.log).read_text()
    assert "failed" in sweep_table(sweep)


def test_slurm_without_slurm_is_one_clear_error(tmp_path: Path, monkeypatch):
    from bench.errors import BenchError

    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    with pytest.raises(BenchError, match="slurm executor.*--executor local"):
        run_sweep(["logreg"], ["digits"], executor="slurm", limit=4, progress=False,
                  out_dir=tmp_path / "results", leaderboard_dir=tmp_path / "boards")
