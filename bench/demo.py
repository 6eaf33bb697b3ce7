"""`make demo`: every task with embedded data, every baseline, then leaderboards/README.md."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from bench.runner import LEADERBOARD_DIR, evaluate
from bench.spec import TaskSpec, load_spec, task_names
from bench.tables import build_table, read_leaderboard, render

console = Console()


def demo_tasks() -> list[TaskSpec]:
    """The shipped tasks whose data is embedded (they need no download)."""
    return [spec for spec in map(load_spec, task_names()) if spec.dataset.embedded]


def run_demo(tasks: list[str] | None = None, out_dir: Path = Path("results"),
             leaderboard_dir: Path = LEADERBOARD_DIR) -> Path:
    """Evaluate every baseline of every embedded task; write the tables; return README path."""
    specs = [load_spec(t) for t in tasks] if tasks else demo_tasks()
    start = time.perf_counter()
    for spec in specs:
        for model in spec.baselines:
            result = evaluate(spec, model, out_dir=out_dir, leaderboard_dir=leaderboard_dir,
                              progress=False)
            console.print(f"{spec.task:24s} {model:18s} {spec.primary_metric} = "
                          f"{result.primary:.4f}  ({result.metadata['wall_s']:.1f}s)")
            figure_dir = leaderboard_dir / "figures" / spec.task / result.model
            if result.figures:
                shutil.rmtree(figure_dir, ignore_errors=True)
                figure_dir.mkdir(parents=True)
                for figure in result.figures:
                    shutil.copy(figure, figure_dir / Path(figure).name)
    readme = write_tables(load_all=[load_spec(t) for t in task_names()],
                          leaderboard_dir=leaderboard_dir)
    console.print(f"demo finished in {time.perf_counter() - start:.0f}s: leaderboards in "
                  f"{leaderboard_dir}/, tables in {readme}, runs in {out_dir}/")
    return readme


def write_tables(load_all: list[TaskSpec], leaderboard_dir: Path) -> Path:
    """Write leaderboards/README.md: one table per task that has a leaderboard."""
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
        figures = sorted((leaderboard_dir / "figures" / spec.task).glob("*/*.png"))
        for figure in figures:
            relative = figure.relative_to(leaderboard_dir)
            parts.append(f"\n![{relative.parent.name}: {figure.stem}]({relative})\n")
    readme = leaderboard_dir / "README.md"
    readme.write_text("\n".join(parts), encoding="utf-8")
    return readme
