"""Leaderboards -> result tables (Markdown, LaTeX booktabs, CSV, HTML) with relative change
against a reference model and paired-bootstrap confidence intervals."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.formats.leaderboard import read_leaderboard_rows

FORMATS = ("md", "latex", "csv", "html")
LEADERBOARD_DIR = Path(__file__).resolve().parents[1] / "leaderboards"


@dataclass
class Table:
    """A rendered-ready table: rows per model, metric columns, notes to print under it."""

    task: str
    columns: list[str]
    lower_is_better: set[str]
    rows: pd.DataFrame
    primary: str
    reference: str | None = None
    notes: list[str] = field(default_factory=list)


def leaderboard_path(task_or_csv: str, leaderboard_dir: Path) -> Path:
    """A task name -> ``leaderboards/<task>.csv``; a path to a CSV as given.

    The spec is checked without building its metrics, so no metric module is imported."""
    path = Path(task_or_csv)
    if path.suffix == ".csv":
        return path
    from bench.spec import load_spec

    return leaderboard_dir / load_spec(task_or_csv, check_metrics=False).leaderboard_name


# the columns a table is built from
TABLE_COLUMNS = ("timestamp", "model", "primary_metric", "metrics", "lower_is_better",
                 "comparability_key")


def read_leaderboard(path: Path) -> pd.DataFrame:
    """All rows of a leaderboard CSV as strings; a missing or empty file is an error."""
    if not path.is_file():
        raise BenchError(f"no leaderboard at {path}", "run `arbench run TASK --model REF` first")
    header, rows = read_leaderboard_rows(path)
    missing = [column for column in TABLE_COLUMNS if column not in header]
    if missing:
        raise BenchError(f"leaderboard {path} is not an arbench leaderboard: no column "
                         f"{missing[0]!r}", "give a CSV written by `arbench run`")
    if not rows:
        raise BenchError(f"leaderboard {path} has no rows")
    return pd.DataFrame(rows, columns=header, dtype=str)


def build_table(
    frame: pd.DataFrame,
    *,
    runs: str = "best",
    reference: str | None = None,
    key: str | None = None,
    models: list[str] | None = None,
) -> Table:
    """Pick comparable rows (one comparability key), one per model (best or latest run).

    Without ``key``, the key of the latest run over the whole data set is used (a quick
    ``--limit`` run does not hide the full runs); the latest run's when all are limited.
    """
    frame = frame.sort_values("timestamp", kind="stable")
    if key is None:
        full = frame[frame["limit"] == ""] if "limit" in frame else frame
        key = (full if len(full) else frame)["comparability_key"].iloc[-1]
    notes = []
    comparable = frame[frame["comparability_key"] == key]
    if len(comparable) < len(frame):
        notes.append(
            f"{len(frame) - len(comparable)} row(s) with another comparability key "
            "(other protocol, data, metric version or sample count) left out"
        )
    if models:
        comparable = comparable[comparable["model"].isin(models)]
    last = comparable.iloc[-1]
    primary = last["primary_metric"]
    columns = [c for c in last["metrics"].split(";") if c]
    lower = {c for c in last["lower_is_better"].split(";") if c}
    values = comparable.copy()
    for column in columns:
        values[column] = pd.to_numeric(values[column], errors="coerce")
    if runs == "latest":
        chosen = values.groupby("model", sort=False).tail(1)
    elif runs == "best":
        ascending = primary in lower
        chosen = values.sort_values(primary, ascending=ascending, kind="stable")
        chosen = chosen.groupby("model", sort=False).head(1)
    else:
        raise BenchError(f"--runs must be best or latest, got {runs!r}")
    chosen = chosen.sort_values(primary, ascending=primary in lower, kind="stable")
    if reference is not None and reference not in set(chosen["model"]):
        raise BenchError(f"reference model {reference!r} has no comparable row",
                         f"models: {', '.join(chosen['model'])}")
    return Table(last["task"], columns, lower, chosen.reset_index(drop=True), primary,
                 reference, notes)


def relative_change(value: float, reference: float) -> float:
    """Percent change of ``value`` over ``reference`` (nan when the reference is 0)."""
    if reference == 0 or math.isnan(reference) or math.isnan(value):
        return float("nan")
    return (value - reference) / abs(reference) * 100.0


def format_percent(change: float) -> str:
    """+64% style text (one decimal below 10%)."""
    if math.isnan(change):
        return "n/a"
    return f"{change:+.0f}%" if abs(change) >= 10 else f"{change:+.1f}%"


def paired_bootstrap(
    values: np.ndarray, reference: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Relative change of mean(values) over mean(reference) with a paired-bootstrap 95% CI.

    Both arrays are per-sample values over the same samples in the same order; returns
    (change %, low %, high %).
    """
    rng = np.random.default_rng(seed)
    n = len(values)
    index = rng.integers(0, n, size=(resamples, n))
    means = values[index].mean(axis=1)
    ref_means = reference[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = (means - ref_means) / np.abs(ref_means) * 100.0
    changes = changes[np.isfinite(changes)]
    point = relative_change(float(values.mean()), float(reference.mean()))
    if not len(changes):
        return point, float("nan"), float("nan")
    low, high = np.percentile(changes, [2.5, 97.5])
    return point, float(low), float(high)


def _per_sample(row: pd.Series) -> dict[str, float] | None:
    key = row.get("primary_sample_key", "")
    path = Path(row.get("result_dir", "")) / "samples.jsonl"
    if not key or not path.is_file():
        return None
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if key in record and record[key] is not None:
                values[record["id"]] = float(record[key])
    return values


def change_cells(table: Table, with_ci: bool) -> dict[str, str]:
    """Per model, the relative change of the primary metric vs the reference (and CI)."""
    if table.reference is None:
        return {}
    rows = table.rows.set_index("model")
    ref_row = rows.loc[table.reference]
    ref_value = float(ref_row[table.primary])
    ref_samples = _per_sample(ref_row) if with_ci else None
    cells = {}
    for model, row in rows.iterrows():
        if model == table.reference:
            cells[model] = "(reference)"
            continue
        text = format_percent(relative_change(float(row[table.primary]), ref_value))
        samples = _per_sample(row) if ref_samples else None
        if samples:
            shared = sorted(set(samples) & set(ref_samples))
            if shared:
                _, low, high = paired_bootstrap(
                    np.array([samples[i] for i in shared]),
                    np.array([ref_samples[i] for i in shared]),
                )
                text += f" [{format_percent(low)}, {format_percent(high)}], N={len(shared)}"
        cells[model] = text
    return cells


def _best(table: Table, column: str) -> float | None:
    values = table.rows[column].dropna()
    if values.empty:
        return None
    return float(values.min() if column in table.lower_is_better else values.max())


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.4f}"


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
                 "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
                 "\n": " ", "\r": " "}


def latex_cell(text: str) -> str:
    """``text`` as LaTeX that prints it literally (special characters escaped, one line)."""
    return "".join(LATEX_ESCAPES.get(char, char) for char in text)


def markdown_cell(text: str) -> str:
    """``text`` as one Markdown table cell: pipes and HTML angle brackets escaped, line
    breaks as spaces (names with ``_`` stay readable: GitHub Markdown does not emphasise
    inside words)."""
    text = " ".join(text.splitlines())
    for char in "|<>":
        text = text.replace(char, "\\" + char)
    return text


def render(table: Table, fmt: str = "md", with_ci: bool = False) -> str:
    """Render a Table as Markdown, LaTeX (booktabs), CSV or HTML; the best value is bold."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    change = change_cells(table, with_ci)
    header = ["model"] + [c + (" ↓" if c in table.lower_is_better else " ↑")
                          for c in table.columns]
    if change:
        header.append(f"{table.primary} vs {table.reference}")
    best = {c: _best(table, c) for c in table.columns}
    body: list[list[tuple[str, bool]]] = []
    for _, row in table.rows.iterrows():
        cells = [(str(row["model"]), False)]
        for column in table.columns:
            value = row[column]
            is_best = (best[column] is not None and not pd.isna(value)
                       and float(value) == best[column])
            cells.append((_number(float(value)), is_best))
        if change:
            cells.append((change[row["model"]], False))
        body.append(cells)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[text for text, _ in cells] for cells in body])
        return out.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(map(markdown_cell, header)) + " |",
                 "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(f"**{markdown_cell(t)}**" if b else markdown_cell(t)
                                    for t, b in cells) + " |"
                  for cells in body]
        text = "\n".join(lines)
        return text + "".join(f"\n\n_{note}_" for note in table.notes) + "\n"
    if fmt == "latex":
        lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(latex_cell(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(rf"\textbf{{{latex_cell(t)}}}" if b else latex_cell(t)
                             for t, b in cells) + r" \\"
                  for cells in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    rows_html = "".join(
        "<tr>" + "".join(f"<td><b>{html.escape(t)}</b></td>" if b else f"<td>{html.escape(t)}</td>"
                         for t, b in cells) + "</tr>\n"
        for cells in body
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    notes = "".join(f"<p><em>{html.escape(n)}</em></p>\n" for n in table.notes)
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows_html}</tbody>\n"
            f"</table>\n{notes}")


def render_grid(header: list[str], rows: list[list[str]], fmt: str,
                columns: str | None = None) -> str:
    """A plain grid of text cells (no bold, no notes) in one of FORMATS, every cell escaped
    for its format; ``columns`` is LaTeX's column spec (default ``l`` then ``r`` s)."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        return out.getvalue()
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n"
                       for row in rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"
    if fmt == "latex":
        spec = columns or "l" + "r" * (len(header) - 1)
        lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(map(latex_cell, header)) + r" \\", r"\midrule",
                 *(" & ".join(map(latex_cell, row)) + r" \\" for row in rows),
                 r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    lines = ["| " + " | ".join(map(markdown_cell, header)) + " |", "|" + "---|" * len(header),
             *("| " + " | ".join(map(markdown_cell, row)) + " |" for row in rows)]
    return "\n".join(lines) + "\n"

