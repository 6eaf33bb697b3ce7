"""Sweeps: one job per (model, task) through submitit (Slurm on a cluster, its local
executor on one machine), at most N at a time, gathered into one model x task table.

A cell whose model fingerprint and comparability key already have a row in the task's
leaderboard is not run again; every job appends its own row (the leaderboard append holds
a file lock, so concurrent jobs are safe).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError


@dataclass
class Cell:
    """One (model, task) of a sweep and what became of it."""

    model: str
    task: str
    status: str = "pending"  # done (before this sweep) | ok | failed
    model_name: str = ""
    fingerprint: str = ""
    key: str = ""
    reason: str = ""
    log: str = ""
    value: float | None = None
    metric: str = ""


@dataclass
class Sweep:
    """Every cell of a sweep, in model x task order."""

    models: list[str]
    tasks: list[str]
    cells: list[Cell] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> list[Cell]:
        """The cells whose job failed."""
        return [cell for cell in self.cells if cell.status == "failed"]


def run_cell(task: str, model: str, options: dict[str, Any]) -> dict[str, Any]:
    """The job of one cell (runs in the submitit worker): evaluate and append the row."""
    from bench.runner import evaluate

    result = evaluate(task, model, progress=False, **options)
    return {"run_id": result.run_id, "result_dir": str(result.out_dir),
            "primary_metric": result.primary_metric, "value": result.primary,
            "comparability_key": result.comparability_key}


def expected_row(task: str, model: str, overrides: list[str], limit: int | None
                 ) -> tuple[str, str, str]:
    """(model name, model fingerprint, comparability key) a run of the cell would record,
    computed without running the model (fingerprint '' when it cannot be known before)."""
    from bench.models import file_hash
    from bench.registry import MODELS
    from bench.runner import build_dataset, build_metrics, comparability_key
    from bench.spec import load_spec

    spec = load_spec(task, overrides)
    dataset = build_dataset(spec)
    n_samples = len(dataset) if limit is None else min(limit, len(dataset))
    key = comparability_key(spec, dataset, build_metrics(spec), n_samples)
    name = model.removeprefix("baseline:")
    if model.startswith("baseline:") or (name in MODELS and not Path(model).exists()):
        import hashlib

        weights = MODELS.get(name).weights(spec.task)
        fingerprint = file_hash(*weights) or hashlib.sha256(name.encode()).hexdigest()[:16]
        return name, fingerprint, key
    path = Path(model)
    if path.is_file():
        return path.stem, file_hash(path), key
    return model, "", key


def _board_row(board: Path, cell: Cell) -> dict[str, Any] | None:
    from bench.results import read_leaderboard_rows

    _, rows = read_leaderboard_rows(board)
    same = [row for row in rows if row.get("model") == cell.model_name
            and row.get("model_fingerprint") == cell.fingerprint
            and row.get("comparability_key") == cell.key]
    return max(same, key=lambda row: row.get("timestamp", "")) if same else None


def run_sweep(models: list[str], tasks: list[str], *, executor: str = "local", jobs: int = 2,
              out_dir: str | Path = "results", leaderboard_dir: str | Path | None = None,
              overrides: list[str] | None = None, limit: int | None = None,
              log_dir: str | Path | None = None, slurm_partition: str | None = None,
              gpus_per_job: int = 0, timeout_min: int = 60, progress: bool = True,
              **options: Any) -> Sweep:
    """Submit one job per (model, task) cell not already in the leaderboards, at most
    ``jobs`` at a time, wait for them and return every cell with its primary metric."""
    import submitit

    from bench.campaign.suites import fits_model
    from bench.runner import LEADERBOARD_DIR
    from bench.spec import load_spec

    if executor not in ("local", "slurm"):
        raise BenchError(f"unknown executor {executor!r}", "use local or slurm")
    if jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {jobs}")
    boards = Path(leaderboard_dir or LEADERBOARD_DIR).resolve()
    out = Path(out_dir).resolve()
    sweep = Sweep(models, tasks)
    for model in models:
        for task in tasks:
            spec = load_spec(task, overrides, check_metrics=False)
            if not fits_model(model, spec.family):
                sweep.left_out.append((model, task))
                continue
            cell = Cell(model, task)
            # when the key cannot be known here, the job fails with the same error and log
            with contextlib.suppress(BenchError):
                cell.model_name, cell.fingerprint, cell.key = expected_row(
                    task, model, overrides or [], limit)
            cell.metric = spec.primary_metric
            row = _board_row(boards / spec.leaderboard_name, cell) if cell.fingerprint else None
            if row is not None:
                cell.status, cell.value = "done", float(row[spec.primary_metric])
            sweep.cells.append(cell)

    todo = [cell for cell in sweep.cells if cell.status == "pending"]
    if not todo:
        return sweep
    logs = Path(log_dir) if log_dir else out / "sweeps" / time.strftime("%Y%m%d-%H%M%S")
    try:
        pool = submitit.AutoExecutor(folder=logs / "%j", cluster=executor)
    except RuntimeError as exc:
        raise BenchError(f"cannot use the {executor} executor: {exc}",
                         "run on a Slurm login node, or pass --executor local") from exc
    parameters: dict[str, Any] = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_job,
                                  "name": "arbench"}
    if slurm_partition:
        parameters["slurm_partition"] = slurm_partition
    pool.update_parameters(**parameters)
    job_options = {"out_dir": str(out), "leaderboard_dir": str(boards),
                   "overrides": overrides, "limit": limit, **options}
    running: list[tuple[Cell, Any]] = []
    with _Bar(progress, len(todo)) as advance:
        while todo or running:
            while todo and len(running) < jobs:
                cell = todo.pop(0)
                running.append((cell, pool.submit(run_cell, cell.task, cell.model,
                                                  job_options)))
            for cell, job in [entry for entry in running if entry[1].done()]:
                running.remove((cell, job))
                _collect(cell, job)
                advance()
            time.sleep(0.2)
    return sweep


def _collect(cell: Cell, job: Any) -> None:
    """A finished job's outcome into its cell (a failure keeps the job's log path)."""
    import submitit

    try:
        summary = job.result()
    except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "error:" in line]
        cell.status, cell.log = "failed", str(job.paths.stderr)
        cell.reason = (errors or lines or ["job failed"])[-1].strip()
        return
    cell.status, cell.value = "ok", float(summary["value"])


class _Bar:
    """A rich progress bar over the submitted jobs (or nothing)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.bar = enabled and total > 0, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                            transient=True, console=Console(stderr=True))
        self.bar.start()
        task = self.bar.add_task("jobs", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def sweep_table(sweep: Sweep, fmt: str = "md") -> str:
    """One row per model, one column per task (its primary metric); a cell is blank
    when the task is not the model's family and ``failed`` when its job failed."""
    from bench.tables import render_grid

    metric = {cell.task: cell.metric for cell in sweep.cells}
    header = ["model", *(f"{t} ({metric[t]})" if t in metric else t for t in sweep.tasks)]
    by_cell = {(cell.model, cell.task): cell for cell in sweep.cells}
    rows = []
    for model in sweep.models:
        row = [model.removeprefix("baseline:")]
        for task in sweep.tasks:
            cell = by_cell.get((model, task))
            row.append("" if cell is None else "failed" if cell.status == "failed"
                       else f"{cell.value:.4g}")
        rows.append(row)
    return render_grid(header, rows, fmt)
