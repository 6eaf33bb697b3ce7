"""Task specs: a validated pydantic model loaded from YAML, with ``--set`` overrides.

Every problem in a spec is reported at once, each naming the file, the line and the key.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError, SpecError

TASKS_DIR = Path(__file__).parent / "tasks"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Where the data is and which adapter reads it."""

    adapter: str
    root: str | None = Field(
        None, description="data directory; relative paths resolve under the data root"
    )
    split: str = "test"
    embedded: str | None = Field(
        None, description="name of the embedded data set the task scores; it lives in its own "
        "folder under the data root (built offline when missing) and root must be unset"
    )
    params: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_Strict):
    """One metric module and its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TaskSpec(_Strict):
    """A task: a data set read by an adapter, a family contract, a protocol and metrics."""

    task: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1)
    family: str
    description: str
    dataset: DatasetSpec
    protocol: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricSpec] = Field(min_length=1)
    primary_metric: str
    baselines: list[str] = Field(default_factory=list)
    leaderboard: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.csv$",
        description="leaderboard CSV file name inside the leaderboard folder (a plain name, "
        "no path), default TASK.csv")
    reference: str | None = Field(
        None, description="model the result tables compare against (relative change column)"
    )

    @property
    def leaderboard_name(self) -> str:
        """File name of this task's leaderboard CSV."""
        return self.leaderboard or f"{self.task}.csv"

    def protocol_hash(self) -> str:
        """Hash of everything that changes what a number means (not where data lives)."""
        payload = {
            "task": self.task,
            "version": self.version,
            "family": self.family,
            "adapter": self.dataset.adapter,
            "data": self.dataset.embedded or "real",
            "split": self.dataset.split,
            "dataset_params": self.dataset.params,
            "protocol": self.protocol,
            "metrics": [m.model_dump() for m in self.metrics],
        }
        return _short_hash(payload)

    def spec_hash(self) -> str:
        """Hash of the whole spec."""
        return _short_hash(self.model_dump())


def _short_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_named_yaml(ref: str | Path, folder: Path, what: str, listing: str) -> Path:
    """A name of a shipped YAML file in ``folder`` (``digits``) or a path to a YAML file ->
    the file's path; an unknown name raises with "did you mean" and the valid names."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise BenchError(f"{what} file {path} does not exist")
        return path
    candidate = folder / f"{ref}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(str(ref), names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"see {listing}"
    raise BenchError(f"unknown {what} {ref!r} (valid: {', '.join(names)})", hint)


def resolve_task_path(task: str | Path) -> Path:
    """A task name (``digits``) or a path to a YAML file -> the spec file's path."""
    return resolve_named_yaml(task, TASKS_DIR, "task", "`arbench list`")


def task_names() -> list[str]:
    """The names of the task specs shipped with the package."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def _line_map(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Map every key path in a composed YAML tree to its 1-based line number."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            for sub, line in _line_map(value_node, (*path, key)).items():
                if sub != (*path, key):
                    lines[sub] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, index)))
    return lines


MAX_SPEC_NODES = 20_000


def _expansion_problem(root: yaml.Node) -> str | None:
    """Why a composed YAML tree cannot be a spec: aliases that expand past MAX_SPEC_NODES
    nodes ("billion laughs") or that refer to themselves; None when it is fine."""
    count = 0
    stack: list[tuple[yaml.Node, frozenset[int]]] = [(root, frozenset())]
    while stack:
        node, ancestors = stack.pop()
        count += 1
        if count > MAX_SPEC_NODES:
            return (f"the spec expands to more than {MAX_SPEC_NODES} YAML nodes (nested "
                    "aliases?); a task spec is small")
        if id(node) in ancestors:
            return "a YAML alias refers to itself (a recursive structure cannot be a spec)"
        inner = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, inner) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, inner) for child in node.value)
    return None


def _line_for(lines: dict[tuple, int], loc: tuple) -> int:
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise BenchError(f"override {text!r} is not KEY.PATH=VALUE",
                         "e.g. --set dataset.root=/data")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise BenchError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each ``key.path=value`` override into a copy of the raw spec dict.

    A numeric key indexes a list (``metrics.0.params.align=median``).
    """
    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = data
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise BenchError(f"override {text!r}: {key!r} is not an index of a list "
                                     f"of {len(node)} items")
                key = int(key)
            elif not last and not isinstance(node.get(key), dict | list):
                node[key] = {}
            if last:
                node[key] = value
            else:
                node = node[key]
    return data


def load_spec(task: str | Path, overrides: list[str] | None = None, *,
              check_metrics: bool = True) -> TaskSpec:
    """Load, override and validate a task spec; every problem is raised at once.

    ``check_metrics=False`` skips the metrics' declarations (their parameters and outputs are
    then unchecked), so no metric module is imported: for commands that only read the spec.
    """
    path = resolve_task_path(task)
    spec, errors = _load_and_check(path, overrides or [], check_metrics)
    if errors:
        raise SpecError(str(path), errors)
    assert spec is not None
    return spec


def validate_spec_file(path: str | Path, overrides: list[str] | None = None) -> list[str]:
    """Every problem in a spec file (empty when valid), each as ``file:line: key: message``."""
    return _load_and_check(resolve_task_path(path), overrides or [])[1]


def read_yaml_mapping(path: Path, what: str) -> tuple[dict | None, dict[tuple, int], list[str]]:
    """A YAML file of ``what`` (a task spec, a suite) as (mapping, key path -> line, errors):
    non-UTF-8 text, an empty file, alias bombs, malformed YAML and a non-mapping are errors
    naming file and line, found before anything is expanded."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, {}, [f"{path}:1: not UTF-8 text (byte {exc.start}); a {what} is a YAML "
                          "file in UTF-8"]
    except OSError as exc:
        return None, {}, [f"{path}: cannot read: {exc.strerror or exc}"]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return None, {}, [f"{path}:1: the file is empty; a {what} is a mapping of keys to "
                              "values"]
        if problem := _expansion_problem(root):
            return None, {}, [f"{path}:1: {problem}"]
        lines = _line_map(root)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, {}, [f"{where}: malformed YAML: {problem}"]
    if not isinstance(data, dict):
        return None, lines, [f"{path}:1: a {what} must be a mapping of keys to values"]
    return data, lines, []


def schema_errors(path: Path, exc: ValidationError, lines: dict[tuple, int]) -> list[str]:
    """Each pydantic error as ``file:line: key: message`` (unknown keys named so)."""
    errors = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        errors.append(f"{path}:{_line_for(lines, err['loc'])}: {key}: {message}")
    return errors


def _load_and_check(path: Path, overrides: list[str],
                    check_metrics: bool = True) -> tuple[TaskSpec | None, list[str]]:
    data, lines, errors = read_yaml_mapping(path, "task spec")
    if data is None:
        return None, errors
    data = apply_overrides(data, overrides)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        return None, schema_errors(path, exc, lines)
    errors = [
        f"{path}:{_line_for(lines, loc)}: {'.'.join(map(str, loc))}: {message}"
        for loc, message in [*check_data_root(spec), *check_names(spec, check_metrics)]
    ]
    return (None if errors else spec), errors


def check_data_root(spec: TaskSpec) -> list[tuple[tuple, str]]:
    """An embedded task scores its own embedded set only: a ``dataset.root`` beside
    ``dataset.embedded`` is refused, pointing at the real-data tasks of the same adapter and
    family."""
    if spec.dataset.embedded is None or spec.dataset.root is None:
        return []
    real = sorted(
        path.stem for path in TASKS_DIR.glob("*.yaml")
        if (data := _plain_yaml(path)) and isinstance(data.get("dataset"), dict)
        and data["dataset"].get("adapter") == spec.dataset.adapter
        and data.get("family") == spec.family
        and not data["dataset"].get("embedded")
    )
    own = (f"use task {' or '.join(real)} with --set dataset.root=DIR" if real
           else "copy the spec and drop its dataset.embedded")
    return [(("dataset", "root"),
             f"task {spec.task!r} scores arbench's embedded set {spec.dataset.embedded!r} (its "
             f"own folder under the data root) and reads no other folder; to score your own "
             f"data, {own}")]


def _plain_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def check_names(spec: TaskSpec, check_metrics: bool = True) -> list[tuple[tuple, str]]:
    """Registry and metric checks beyond the schema: (key path, message) for each problem.

    Names are checked against the registries' tables, importing nothing; with
    ``check_metrics`` each metric's module is imported and its ``declare`` checks the
    parameters and names the outputs (no metric is built, so no torch), and
    ``primary_metric`` must be one of the outputs.
    """
    from bench.registry import ADAPTERS, EMBEDDED, FAMILIES, METRICS, MODELS

    problems: list[tuple[tuple, str]] = []
    if spec.family not in FAMILIES:
        problems.append((("family",), FAMILIES.unknown_message(spec.family)))
    if spec.dataset.adapter not in ADAPTERS:
        problems.append((("dataset", "adapter"), ADAPTERS.unknown_message(spec.dataset.adapter)))
    if spec.dataset.embedded is not None and spec.dataset.embedded not in EMBEDDED:
        problems.append((("dataset", "embedded"), EMBEDDED.unknown_message(spec.dataset.embedded)))
    outputs: list[str] = []
    for index, metric_spec in enumerate(spec.metrics):
        if metric_spec.name not in METRICS:
            problems.append((("metrics", index, "name"), METRICS.unknown_message(metric_spec.name)))
            continue
        if not check_metrics:
            continue
        try:
            outputs.extend(declared_outputs(METRICS.get(metric_spec.name), metric_spec.params))
        except (TypeError, ValueError) as exc:
            problems.append((("metrics", index, "params"), f"bad parameters: {exc}"))
    if outputs and spec.primary_metric not in outputs:
        problems.append(
            (("primary_metric",), f"{spec.primary_metric!r} is not a metric output "
             f"(outputs: {', '.join(outputs)})")
        )
    for index, name in enumerate(spec.baselines):
        if name not in MODELS:
            problems.append((("baselines", index), MODELS.unknown_message(name)))
    if spec.reference is not None and spec.reference not in spec.baselines:
        problems.append((("reference",), f"{spec.reference!r} is not one of the task's baselines"))
    return problems


def declared_outputs(metric_class: Any, params: dict[str, Any]) -> dict[str, bool]:
    """A metric's outputs (name -> higher is better) for ``params``, from its ``declare``
    classmethod; raises TypeError for parameters the constructor does not take (named as
    the constructor's own call would name them) and the constructor's TypeError or
    ValueError for bad values. A registered factory without ``declare`` is called."""
    if not hasattr(metric_class, "declare"):
        return dict(metric_class(**params).higher_is_better)
    try:
        inspect.signature(metric_class).bind(**params)
    except TypeError as exc:
        raise TypeError(f"{metric_class.__qualname__}.__init__() {exc}") from None
    return metric_class.declare(**params)
