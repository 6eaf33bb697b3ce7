"""`make demo`: every task with embedded data, every baseline, then leaderboards/README.md
and the static site.

The demo publishes into the committed ``leaderboards/``: a rerun of a model on the same
protocol replaces its row (an unchanged result keeps the row as it is), and its per-sample
records go to ``leaderboards/samples/``, so a second demo on an unchanged checkout leaves
``git status`` clean. The full history stays in ``results/``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import matplotlib
from rich.console import Console

from bench.adapters.base import embedded_is_built
from bench.formats.leaderboard import read_leaderboard_rows
from bench.registry import METRICS
from bench.results import publish_leaderboard_row
from bench.runner import LEADERBOARD_DIR, evaluate
from bench.site import build_site
from bench.spec import TaskSpec, load_spec, task_names
from bench.tables import build_table, read_leaderboard, render

console = Console()
FIGURES_PER_RUN = 4
FIGURE_MAX_SIDE = 800
BUILDER_NICENESS = 19


def demo_tasks() -> list[TaskSpec]:
    """The shipped tasks whose data is embedded (they need no download)."""
    return [spec for spec in map(load_spec, task_names()) if spec.dataset.embedded]


def stable_figures() -> None:
    """Make matplotlib's files depend on their content only: no dates in SVG/PDF metadata
    (``SOURCE_DATE_EPOCH``), fixed SVG ids (``svg.hashsalt``)."""
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    matplotlib.rcParams["svg.hashsalt"] = "arbench"


def run_demo(tasks: list[str] | None = None, out_dir: Path = Path("results"),
             leaderboard_dir: Path = LEADERBOARD_DIR, site_dir: Path | None = None) -> Path:
    """Evaluate every baseline of every embedded task, publish the rows, write the tables
    and, given ``site_dir``, the static site; return the README path."""
    specs = [load_spec(t) for t in tasks] if tasks else demo_tasks()
    stable_figures()
    start = time.perf_counter()
    for spec in specs:
        read_leaderboard_rows(leaderboard_dir / spec.leaderboard_name)
    builder = build_sets_in_background([spec.dataset.embedded for spec in specs
                                        if spec.dataset.embedded])
    try:
        for spec in specs:
            run_baselines(spec, out_dir, leaderboard_dir)
    finally:
        if builder is not None:
            builder.terminate()
            builder.wait()
    readme = write_tables(load_all=[load_spec(t) for t in task_names()],
                          leaderboard_dir=leaderboard_dir)
    site = f", site in {build_site(leaderboard_dir, site_dir)}" if site_dir else ""
    console.print(f"demo finished in {time.perf_counter() - start:.0f}s: leaderboards in "
                  f"{leaderboard_dir}/, tables in {readme}{site}, runs in {out_dir}/")
    return readme


def build_sets_in_background(names: list[str]) -> subprocess.Popen | None:
    """Start ``arbench data build`` of those of the embedded sets ``names`` that are not
    built, in that order, in a process of its own at the lowest CPU priority; None when
    every one is built.

    The builds then take only the CPU the runs leave idle, and the runs keep their speed (a
    run waits on the set's build lock when it reaches a set still being built; the sets are
    deterministic, so the bytes are those of a build in the run's own process). At the
    normal priority the runs' torch threads lost their cores to it: lift-style's matching
    took 62 s instead of 17. The builder's output is discarded: a build that fails there
    fails again, with its message, in the run that needs the set. Where the OS offers no
    ``setpriority`` (Windows) nothing is started and the runs build their sets.
    """
    missing = [name for name in dict.fromkeys(names) if not embedded_is_built(name)]
    if not missing or not hasattr(os, "setpriority"):
        return None
    builder = subprocess.Popen([sys.executable, "-m", "bench", "data", "build", *missing],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with contextlib.suppress(ProcessLookupError):  # a builder that already ended
        os.setpriority(os.PRIO_PROCESS, builder.pid, BUILDER_NICENESS)
    return builder


def run_baselines(spec: TaskSpec, out_dir: Path, leaderboard_dir: Path) -> None:
    """Evaluate every baseline of ``spec``, publish each row, its samples and figures, then
    the task's comparison figures."""
    details = {}
    for model in spec.baselines:
        result = evaluate(spec, model, out_dir=out_dir, leaderboard=False, progress=False)
        publish_leaderboard_row(leaderboard_dir / spec.leaderboard_name,
                                result.leaderboard_row(), result.out_dir / "samples.jsonl")
        console.print(f"{spec.task:24s} {model:18s} {spec.primary_metric} = "
                      f"{result.primary:.4f}  ({result.metadata['wall_s']:.1f}s)")
        publish_figures(result.figures, leaderboard_dir / "figures" / spec.task / result.model)
        details[result.model] = result.details
    for name in dict.fromkeys(m.name for m in spec.metrics):
        METRICS.get(name).comparison_figures(details, leaderboard_dir / "figures" / spec.task)


def publish_figures(figures: list[str], target: Path) -> None:
    """Copy a run's first PNG figures into ``target``, shrunk to at most 800 px a side.

    The full-size figures (and any videos) stay in the run's results directory; the
    committed leaderboards keep a bounded, small set.
    """
    shutil.rmtree(target, ignore_errors=True)
    pngs = sorted(Path(f) for f in figures if f.endswith(".png"))[:FIGURES_PER_RUN]
    if not pngs:
        return
    target.mkdir(parents=True)
    for figure in pngs:
        image = cv2.imread(str(figure), cv2.IMREAD_UNCHANGED)
        scale = FIGURE_MAX_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(target / figure.name), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def write_tables(load_all: list[TaskSpec], leaderboard_dir: Path) -> Path:
    """Write leaderboards/README.md: one table per task that has a leaderboard, with the
    figures of the best model and of the reference model."""
    parts = ["# arbench leaderboards\n",
             "Written by `make demo` (`arbench demo`); each table shows the best comparable run "
             "per model. Regenerate a table with "
             "`arbench table TASK --format md|latex|csv|html`.\n"]
    for spec in load_all:
        path = leaderboard_dir / spec.leaderboard_name
        if not path.is_file():
            continue
        reference = spec.reference
        table = build_table(read_leaderboard(path))
        if reference not in set(table.rows["model"]):
            reference = None
        table.reference = reference
        parts.append(f"## {spec.task}\n\n{' '.join(spec.description.split())}\n")
        parts.append(render(table, "md", with_ci=reference is not None))
        shown = {table.rows["model"].iloc[0], reference}
        task_figures = leaderboard_dir / "figures" / spec.task
        figures = sorted(task_figures.glob("*.png")) + sorted(
            f for f in task_figures.glob("*/*.png") if f.parent.name in shown)
        for figure in figures:
            relative = figure.relative_to(leaderboard_dir)
            label = "all models" if figure.parent == task_figures else figure.parent.name
            parts.append(f"\n![{label}: {figure.stem}]({relative})\n")
    readme = leaderboard_dir / "README.md"
    readme.write_text("\n".join(parts), encoding="utf-8")
    return readme
