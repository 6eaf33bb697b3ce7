"""`arbench site`: a static leaderboard site built from ``leaderboards/``.

The site is plain files (HTML from Jinja2 templates with autoescaping, one CSS and one JS
file, SVG plots, the runs' PNG figures): it opens from ``file://`` and hosts as-is on any
static host; nothing is fetched from the network. Pages:

- ``index.html``: every task by family, its data set and protocol in one line, the best
  model and how many comparable runs;
- ``tasks/<task>.html``: one tab per comparability group, a sortable table (direction of
  each metric, change against the reference with its 95% interval and N, provenance on
  demand), the field's plot drawn from the per-sample records (or from the leaderboard's
  own metric columns where the plot is a curve over them), and the runs' figures;
- ``models/<model>.html``: where a model was evaluated and where it ranks.

The leaderboards folder is only read.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from bench.errors import BenchError
from bench.tables import (
    Table,
    build_table,
    change_stats,
    format_percent,
    missing_records_note,
    read_leaderboard,
    read_samples,
)

PROVENANCE = ("run_id", "timestamp", "spec_hash", "protocol_hash", "dataset_fingerprint",
              "model_fingerprint", "model_ref", "model_kind", "metric_versions",
              "arbench_version", "torch_version", "cuda_version", "libraries", "git_commit",
              "git_dirty", "device", "wall_s", "samples_per_s", "seed", "limit", "amp")


@dataclass
class Plot:
    """One SVG plot of a task page: file name (under ``plots/``), title, caption."""

    name: str
    title: str
    caption: str
    family: str


@dataclass
class Group:
    """One comparability group of a task: its table and what the page shows of it."""

    key: str
    table: Table
    n_runs: int
    n_samples: str
    limited: bool
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class TaskPage:
    """What the index and a task page show of one leaderboard."""

    task: str
    family: str
    description: str
    dataset: str
    primary: str
    reference: str | None
    groups: list[Group]
    plots: list[Plot] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def best(self) -> str:
        """The best model of the default (first) group."""
        return str(self.groups[0].table.rows["model"].iloc[0])


def page_name(name: str) -> str:
    """A file name for a user-given name: its safe characters plus a short hash (so two
    names never share a page, and no name can reach outside the folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "model"
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.html"


def _specs_by_leaderboard() -> dict[str, object]:
    """The shipped task specs by leaderboard file name, read without the registry checks of
    ``load_spec`` (they import every adapter, metric and model; the site needs only the
    specs' text); a spec that does not validate is left out."""
    import yaml
    from pydantic import ValidationError

    from bench.spec import TaskSpec, resolve_task_path, task_names

    specs = {}
    for name in task_names():
        try:
            spec = TaskSpec.model_validate(yaml.safe_load(
                resolve_task_path(name).read_text(encoding="utf-8")))
        except (BenchError, ValidationError, yaml.YAMLError, OSError):
            continue
        specs.setdefault(spec.leaderboard_name, spec)
    return specs


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def shown_columns(table: Table) -> list[str]:
    """The metric columns in the order a task page shows them: the primary metric first
    (the change against the reference follows it), then the others as the task lists them."""
    return [table.primary] + [c for c in table.columns if c != table.primary]


def _group_rows(frame: pd.DataFrame, table: Table) -> tuple[list[dict], str | None]:
    """Table rows as the template shows them, and the missing-records note."""
    stats, missing = change_stats(table) if table.reference else ({}, [])
    note = missing_records_note(missing)
    rows = []
    for rank, (_, row) in enumerate(table.rows.iterrows(), start=1):
        model = str(row["model"])
        cells = []
        for column in shown_columns(table):
            value = float(row[column])
            cells.append({"text": _number(value),
                          "value": "" if math.isnan(value) else repr(value)})
        change = None
        if table.reference is not None:
            stat = stats.get(model)
            if model == table.reference:
                change = {"text": "reference", "value": "0", "interval": "", "n": ""}
            elif stat is not None:
                interval = (f"[{format_percent(stat.low)}, {format_percent(stat.high)}]"
                            if stat.n else "no per-sample records")
                change = {"text": format_percent(stat.change),
                          "value": "" if math.isnan(stat.change) else repr(stat.change),
                          "interval": interval, "n": str(stat.n) if stat.n else ""}
        runs = frame[(frame["model"] == row["model"])
                     & (frame["comparability_key"] == row["comparability_key"])]
        rows.append({"rank": rank, "model": model, "page": page_name(model), "cells": cells,
                     "change": change, "runs": len(runs),
                     "provenance": [(k, str(row.get(k, ""))) for k in PROVENANCE]})
    return rows, note


def build_groups(frame: pd.DataFrame, reference: str | None) -> list[Group]:
    """One Group per comparability key, the default key (the one ``arbench table`` uses)
    first, then the others, newest first. Changes are against ``reference`` (the spec's)
    where the group has it; a task whose spec names none compares against the group's
    last-ranked model."""
    default = build_table(frame)
    keys = [default.rows["comparability_key"].iloc[0]]
    ordered = frame.sort_values("timestamp", kind="stable")["comparability_key"]
    keys += [k for k in reversed(list(dict.fromkeys(ordered))) if k not in keys]
    groups = []
    for key in keys:
        table = build_table(frame, key=key)
        table.notes = []
        models = list(table.rows["model"])
        if reference in models:
            table.reference = reference
        elif reference is None and len(models) > 1:
            table.reference = models[-1]
        members = frame[frame["comparability_key"] == key]
        rows, note = _group_rows(frame, table)
        groups.append(Group(key=key, table=table, n_runs=len(members),
                            n_samples=str(members["n_samples"].iloc[-1]),
                            limited=bool(members["limit"].iloc[-1]) if "limit" in members
                            else False, rows=rows, notes=[note] if note else []))
    return groups


# ---------------------------------------------------------------- the field's plots

def _records(table: Table) -> dict[str, pd.DataFrame]:
    """Per model of the table, its per-sample records (models without records left out)."""
    out = {}
    for _, row in table.rows.iterrows():
        records = read_samples(row, table.samples_dir)
        if records is not None:
            out[str(row["model"])] = records
    return out


def _column_curve(table: Table, pattern: str) -> tuple[list[float], dict[str, list[float]]]:
    """x values parsed from the metric columns matching ``pattern`` (one number group) and,
    per model, the column values: a curve over the leaderboard's own columns."""
    matches = [(float(m.group(1)), c) for c in table.columns
               if (m := re.fullmatch(pattern, c))]
    matches.sort()
    xs = [x for x, _ in matches]
    curves = {str(row["model"]): [float(row[c]) for _, c in matches]
              for _, row in table.rows.iterrows()}
    return xs, curves


def _plot_lines(axes, xs, curves: dict[str, list[float]], style: str = "-o") -> None:
    for model, ys in curves.items():
        axes.plot(xs, ys, style, label=model, markersize=3)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


def _plot_matching(table: Table, axes) -> str | None:
    records = _records(table)
    keys = sorted((float(m.group(1)), k) for k in
                  next(iter(records.values())).columns if (m := re.fullmatch(
                      r"accuracy@([0-9.]+)px", k))) if records else []
    if keys:
        xs = [x for x, _ in keys]
        for model, frame in records.items():
            line = axes.plot(xs, [frame[k].mean() for _, k in keys], "-o", markersize=3,
                             label=f"{model} (overall)")[0]
            for prefix, name, style in (("i_", "illumination", "--"), ("v_", "viewpoint", ":")):
                part = frame[frame["id"].str.startswith(prefix)]
                if len(part) and len(part) < len(frame):
                    axes.plot(xs, [part[k].mean() for _, k in keys], style,
                              color=line.get_color(), label=f"{model} ({name})")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=6)
        caption = "mean matching accuracy per image pair, from the per-sample records"
    else:
        xs, curves = _column_curve(table, r"mma@([0-9.]+)px")
        if not xs:
            return None
        _plot_lines(axes, xs, curves)
        caption = "mean matching accuracy, from the leaderboard's mma@ columns"
    axes.set(xlabel="threshold (px)", ylabel="MMA", ylim=(0, 1.02), title="MMA curve")
    return caption


def _cumulative(axes, records: dict[str, pd.DataFrame], key: str, grid: np.ndarray,
                scale: float = 1.0) -> bool:
    drawn = False
    for model, frame in records.items():
        if key not in frame:
            continue
        errors = np.sort(frame[key].to_numpy(dtype=float) * scale)
        errors = np.where(np.isnan(errors), np.inf, errors)
        axes.plot(grid, np.searchsorted(errors, grid, side="right") / max(len(errors), 1),
                  label=model)
        drawn = True
    if drawn:
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return drawn


def _plot_pose(table: Table, axes) -> str | None:
    records = _records(table)
    grid = np.linspace(0, 10, 101)
    key = "adds" if any("adds" in f for f in records.values()) else "add"
    if not _cumulative(axes, records, key, grid, scale=100.0):
        return None
    name = {"adds": "ADD-S", "add": "ADD"}[key]
    axes.set(xlabel=f"{name} threshold (cm)", ylabel="accuracy", ylim=(0, 1.02),
             title="accuracy vs threshold")
    return f"fraction of objects with {name} error below the threshold (0-10 cm)"


def _plot_cm_deg(table: Table, axes) -> str | None:
    records = {m: f for m, f in _records(table).items()
               if {"rotation_error", "translation_error"} <= set(f.columns)}
    if not records:
        return None
    grid = np.linspace(0, 10, 101)
    for model, frame in records.items():
        rotation = frame["rotation_error"].to_numpy(dtype=float)
        translation = frame["translation_error"].to_numpy(dtype=float) * 100.0
        worst = np.sort(np.nan_to_num(np.maximum(rotation, translation), nan=np.inf))
        axes.plot(grid, np.searchsorted(worst, grid, side="right") / len(worst), label=model)
    axes.axvline(5, color="grey", linewidth=0.8, linestyle=":")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set(xlabel="threshold k (k cm and k degrees)", ylabel="accuracy", ylim=(0, 1.02),
             title="accuracy vs k cm k°")
    return ("fraction of objects with rotation error below k degrees and translation error "
            "below k cm (5cm5deg at k = 5)")


def _plot_hands(table: Table, axes) -> str | None:
    grid = np.linspace(0, 50, 101)
    if not _cumulative(axes, _records(table), "error_mm", grid):
        return None
    axes.set(xlabel="threshold (mm)", ylabel="fraction of samples", ylim=(0, 1.02),
             title="3D PCK curve (per-sample mean error)")
    return ("fraction of samples whose mean 3D keypoint error (visible keypoints) is below "
            "the threshold, 0-50 mm")


def _plot_depth(table: Table, axes) -> str | None:
    records = _records(table)
    values = [f["abs_rel"].dropna() for f in records.values() if "abs_rel" in f]
    if not values:
        return None
    top = float(np.nanpercentile(np.concatenate(values), 99)) or 1.0
    _cumulative(axes, records, "abs_rel", np.linspace(0, top, 200))
    axes.set(xlabel="AbsRel per image", ylabel="fraction of images", ylim=(0, 1.02),
             title="error CDF")
    return "cumulative distribution of the per-image AbsRel"


def _plot_recall(table: Table, axes) -> str | None:
    xs, curves = _column_curve(table, r"recall@([0-9]+)")
    if not xs:
        return None
    _plot_lines(axes, xs, curves)
    axes.set(xlabel="k", ylabel="recall@k", ylim=(0, 1.02), title="recall@k")
    return "recall@k from the leaderboard's recall@ columns"


def _plot_davis(table: Table, axes) -> str | None:
    records = {m: f for m, f in _records(table).items() if "J&F" in f}
    if not records:
        return None
    sequences = sorted(set().union(*(set(f["id"]) for f in records.values())))
    width = 0.8 / len(records)
    for index, (model, frame) in enumerate(records.items()):
        scores = frame.set_index("id")["J&F"].reindex(sequences)
        axes.bar(np.arange(len(sequences)) + index * width, scores.to_numpy(), width,
                 label=model)
    axes.set_xticks(np.arange(len(sequences)) + 0.4 - width / 2, sequences, rotation=60,
                    fontsize=6, ha="right")
    axes.set(ylabel="J&F", ylim=(0, 1.02), title="per-sequence J&F")
    axes.legend(fontsize=7)
    return "J&F mean per sequence, from the per-sample records"


def _plot_shape(table: Table, axes) -> str | None:
    xs, curves = _column_curve(table, r"fscore@([0-9.]+)%")
    if not xs:
        return None
    _plot_lines(axes, xs, curves)
    axes.set(xlabel="threshold (% of the object size)", ylabel="F-score", ylim=(0, 1.02),
             title="F-score vs threshold")
    return "F-score at each threshold, from the leaderboard's fscore@ columns"


# each drawer fills one axes and returns its caption (None: the data for it is missing)
PLOTS: dict[str, list[Callable]] = {
    "matching": [_plot_matching], "pose": [_plot_pose, _plot_cm_deg],
    "handpose": [_plot_hands], "depth": [_plot_depth], "retrieval": [_plot_recall],
    "localization": [_plot_recall], "video": [_plot_davis], "shape": [_plot_shape],
}


def draw_plot(drawer: Callable, table: Table, target: Path) -> str | None:
    """Draw one of a family's plots (a drawer of ``PLOTS``) for ``table`` as an SVG at
    ``target``; its caption, or None when the data for it is missing (nothing written).
    Same data, same bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "arbench", "svg.fonttype": "none"}):
        figure, axes = plt.subplots(figsize=(6.4, 3.6))
        try:
            caption = drawer(table, axes)
            if caption is not None:
                figure.tight_layout()
                buffer = io.StringIO()
                figure.savefig(buffer, format="svg", metadata={"Date": None})
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(buffer.getvalue(), encoding="utf-8")
        finally:
            plt.close(figure)
    return caption


# ---------------------------------------------------------------- the site

def collect_tasks(leaderboard_dir: Path) -> list[TaskPage]:
    """A TaskPage per leaderboard CSV in ``leaderboard_dir`` (tasks the package ships get
    their family, description and reference from their spec)."""
    specs = _specs_by_leaderboard()
    pages = []
    for path in sorted(Path(leaderboard_dir).glob("*.csv")):
        frame = read_leaderboard(path)
        spec = specs.get(path.name)
        reference = getattr(spec, "reference", None)
        groups = build_groups(frame, reference)
        if spec is not None:
            description = " ".join(spec.description.split())
            dataset = (f"{spec.dataset.adapter} ({spec.dataset.embedded or 'real data'}, "
                       f"split {spec.dataset.split}); protocol {spec.protocol_hash()[:8]}")
            family, task = spec.family, spec.task
        else:
            description, dataset = "", "not a shipped task"
            family, task = "other", str(frame["task"].iloc[-1])
        pages.append(TaskPage(task=task, family=family, description=description,
                              dataset=dataset, primary=groups[0].table.primary,
                              reference=reference, groups=groups))
    return pages


def _figure_label(figure: Path, task_dir: Path) -> str:
    folder = figure.relative_to(task_dir).parent
    return f"{'all models' if folder == Path() else folder.as_posix()}: {figure.stem}"


def _environment() -> Environment:
    return Environment(loader=PackageLoader("bench", "site_templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def build_site(leaderboard_dir: Path, out_dir: Path) -> Path:
    """Write the static site for the leaderboards in ``leaderboard_dir`` into ``out_dir``
    (replaced if arbench built it before); returns the path of ``index.html``."""
    leaderboard_dir, out_dir = Path(leaderboard_dir), Path(out_dir)
    if not any(leaderboard_dir.glob("*.csv")):
        raise BenchError(f"no leaderboard CSV in {leaderboard_dir}",
                         "run `arbench demo` or `arbench run TASK --model REF` first")
    marker = out_dir / ".arbench-site"
    if out_dir.exists() and any(out_dir.iterdir()) and not marker.is_file():
        raise BenchError(f"{out_dir} exists and was not written by `arbench site`",
                         "pass --out to an empty or new folder")
    if out_dir.resolve() == leaderboard_dir.resolve():
        raise BenchError("the site cannot be written into the leaderboards folder")
    shutil.rmtree(out_dir, ignore_errors=True)
    (out_dir / "tasks").mkdir(parents=True)
    (out_dir / "models").mkdir()
    marker.write_text("written by `arbench site`; rebuilt (deleted) by the next build\n")
    templates = Path(__file__).parent / "site_templates"
    shutil.copytree(templates / "assets", out_dir / "assets")

    pages = collect_tasks(leaderboard_dir)
    env = _environment()
    models: dict[str, list[dict]] = {}
    for page in pages:
        figure_dir = leaderboard_dir / "figures" / page.task
        if figure_dir.is_dir():
            shutil.copytree(figure_dir, out_dir / "figures" / page.task)
            copied = sorted((out_dir / "figures" / page.task).rglob("*.png"))
            page.figures = [(_figure_label(p, out_dir / "figures" / page.task),
                             "../" + p.relative_to(out_dir).as_posix()) for p in copied]
        for number, drawer in enumerate(PLOTS.get(page.family, [])):
            name = f"{page_name(page.task)[:-5]}-{page.groups[0].key}-{number}.svg"
            caption = draw_plot(drawer, page.groups[0].table, out_dir / "plots" / name)
            if caption is not None:
                page.plots.append(Plot(name, f"{page.task}: {page.family}", caption,
                                       page.family))
        for index, group in enumerate(page.groups):
            for row in group.rows:
                models.setdefault(row["model"], []).append({
                    "task": page.task, "task_page": page_name(page.task),
                    "family": page.family, "rank": row["rank"], "of": len(group.rows),
                    "group": "latest protocol" if index == 0 else f"group {group.key}",
                    "primary": group.table.primary,
                    "value": row["cells"][0]["text"]})
        (out_dir / "tasks" / page_name(page.task)).write_text(
            env.get_template("task.html").render(page=page, page_name=page_name,
                                                 shown_columns=shown_columns),
            encoding="utf-8")
    for model, entries in models.items():
        (out_dir / "models" / page_name(model)).write_text(
            env.get_template("model.html").render(model=model, entries=entries),
            encoding="utf-8")
    families = sorted({p.family for p in pages})
    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html").render(
        pages=pages, families=families, page_name=page_name,
        models=sorted(models)), encoding="utf-8")
    return index
