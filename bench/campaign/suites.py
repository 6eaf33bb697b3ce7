"""Suites: named groups of tasks (``bench/suites/*.yaml``), run with one model into one
table (task x metric) and a ``suite.json`` beside the runs.

A suite lists ``tasks`` by name and/or ``select``s them: ``data: embedded | real`` (tasks
whose spec has ``dataset.embedded``, or not) and ``families: [...]``. Suite files are
validated like task specs: every problem at once, each naming file, line and key.
"""

from __future__ import annotations

import datetime as dt
import difflib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError, DataError, SpecError
from bench.spec import (
    _line_for,
    load_spec,
    read_yaml_mapping,
    resolve_named_yaml,
    schema_errors,
    task_names,
)

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuiteSelect(_Strict):
    """Which shipped tasks a suite takes beyond its explicit list."""

    data: Literal["embedded", "real", "any"] = "any"
    families: list[str] = Field(default_factory=list)


class SuiteSpec(_Strict):
    """A suite: a name, a description and its tasks (listed and/or selected)."""

    suite: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str
    tasks: list[str] = Field(default_factory=list)
    select: SuiteSelect | None = None

    def task_list(self) -> list[str]:
        """The suite's task names: the listed ones first, then the selected ones (sorted)."""
        chosen = list(self.tasks)
        if self.select is not None:
            for name in task_names():
                spec = load_spec(name, check_metrics=False)
                data = "embedded" if spec.dataset.embedded else "real"
                if self.select.data not in ("any", data):
                    continue
                if self.select.families and spec.family not in self.select.families:
                    continue
                chosen.append(name)
        return list(dict.fromkeys(chosen))


def suite_names() -> list[str]:
    """The names of the suites shipped with the package."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def resolve_suite_path(suite: str | Path) -> Path:
    """A suite name (``embedded``) or a path to a YAML file -> the suite file's path."""
    return resolve_named_yaml(suite, SUITES_DIR, "suite", "bench/suites/")


def load_suite(suite: str | Path) -> SuiteSpec:
    """Load and validate a suite; every problem is raised at once as ``file:line: key``."""
    from bench.registry import FAMILIES

    path = resolve_suite_path(suite)
    data, lines, errors = read_yaml_mapping(path, "suite")
    if data is None:
        raise SpecError(str(path), errors)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(str(path), schema_errors(path, exc, lines)) from exc
    known = set(task_names())
    problems: list[tuple[tuple, str]] = []
    for index, name in enumerate(spec.tasks):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append((("tasks", index), f"unknown task {name!r}{hint}"))
    for index, family in enumerate(spec.select.families if spec.select else []):
        if family not in FAMILIES:
            problems.append((("select", "families", index), FAMILIES.unknown_message(family)))
    if not spec.tasks and spec.select is None:
        problems.append(((), "a suite needs 'tasks' or 'select'"))
    if problems:
        raise SpecError(str(path), [
            f"{path}:{_line_for(lines, loc)}: {'.'.join(map(str, loc)) or '(top level)'}: {msg}"
            for loc, msg in problems])
    return spec


@dataclass
class TaskOutcome:
    """One task of a suite run: ``ok``, ``skipped`` (its data is missing) or ``failed``."""

    task: str
    status: str
    reason: str = ""
    result: Any = None

    def to_json(self) -> dict[str, Any]:
        """The task's entry in ``suite.json``."""
        entry: dict[str, Any] = {"task": self.task, "status": self.status}
        if self.reason:
            entry["reason"] = self.reason
        if self.result is not None:
            result = self.result
            entry.update({
                "run_id": result.run_id, "result_dir": str(result.out_dir),
                "metrics": result.metrics, "primary_metric": result.primary_metric,
                "comparability_key": result.comparability_key, "n_samples": result.n_samples,
            })
        return entry


@dataclass
class SuiteRun:
    """A model's outcome on every task of a suite (or of a task list)."""

    suite: str
    model: str
    run_id: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def complete(self) -> bool:
        """Whether every task ran."""
        return all(outcome.status == "ok" for outcome in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        """The content of ``suite.json``."""
        return {"suite": self.suite, "model": self.model, "run_id": self.run_id,
                "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "complete": self.complete, "left_out": self.left_out,
                "tasks": [outcome.to_json() for outcome in self.outcomes]}


def fits_model(model: str | None, family: str) -> bool:
    """Whether ``model`` can predict for ``family``: a baseline serves its families; any
    other reference (a file, a callable) is tried on every task."""
    from bench.registry import MODELS

    if not model:
        return True
    name = model.removeprefix("baseline:")
    if not model.startswith("baseline:") and (name not in MODELS or Path(model).exists()):
        return True
    return MODELS.get(name).serves(family)


def run_suite(tasks: list[str], model: str | None, *, suite: str = "tasks",
              strict: bool = False, out_dir: str | Path = "results",
              overrides: list[str] | None = None, **options: Any) -> SuiteRun:
    """Evaluate ``model`` on every task of ``tasks`` that fits its family, in order.

    A task whose data is missing (DataError) is skipped with its one-line reason (raised
    when ``strict``); a task that fails otherwise (BenchError) is recorded as failed; the
    rest go on. Writes ``OUT/suites/<suite>/<model>/<run-id>/suite.json``. ``options``
    are passed to :func:`bench.runner.evaluate`.
    """
    from bench.runner import _safe_name, evaluate

    specs = {name: load_spec(name, overrides, check_metrics=False) for name in tasks}
    fitting = [name for name in tasks if fits_model(model, specs[name].family)]
    if not fitting:
        families = sorted({spec.family for spec in specs.values()})
        raise BenchError(f"model {model!r} serves none of the tasks' families "
                         f"({', '.join(families)})")
    run = SuiteRun(suite, options.get("name") or (model or "model").removeprefix("baseline:"),
                   dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3),
                   left_out=[name for name in tasks if name not in fitting])
    for name in fitting:
        try:
            result = evaluate(name, model, overrides=overrides, out_dir=out_dir, **options)
        except DataError as exc:
            if strict:
                raise
            run.outcomes.append(TaskOutcome(name, "skipped", _one_line(exc)))
            continue
        except BenchError as exc:
            if strict:
                raise
            run.outcomes.append(TaskOutcome(name, "failed", _one_line(exc)))
            continue
        run.outcomes.append(TaskOutcome(name, "ok", result=result))
    from bench.results import write_json_atomic

    run.path = (Path(out_dir) / "suites" / _safe_name(suite) / _safe_name(run.model)
                / run.run_id / "suite.json")
    write_json_atomic(run.path, run.to_json())
    return run


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def suite_table(run: SuiteRun, fmt: str = "md") -> str:
    """The suite's results as one table: a row per task, a column per metric (the primary
    metric of a row marked ``*``), skipped and failed tasks with their reason."""
    from bench.tables import render_grid

    metrics: list[str] = []
    for outcome in run.outcomes:
        if outcome.result is not None:
            metrics += [m for m in outcome.result.metrics if m not in metrics]
    header = ["task", "N", *metrics, "note"]
    rows = []
    for outcome in run.outcomes:
        result = outcome.result
        cells = [outcome.task, str(result.n_samples) if result else ""]
        for metric in metrics:
            value = result.metrics.get(metric) if result else None
            mark = "*" if result and metric == result.primary_metric else ""
            cells.append("" if value is None else f"{value:.4g}{mark}")
        cells.append(outcome.reason if outcome.status != "ok" else "")
        if outcome.status != "ok":
            cells[-1] = f"{outcome.status}: {cells[-1]}"
        rows.append(cells)
    grid = render_grid(header, rows, fmt, columns="lr" + "r" * len(metrics) + "l")
    if fmt != "md":
        return grid
    return f"{run.suite} / {run.model}  (* primary metric)\n\n{grid}"
