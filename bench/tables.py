"""Leaderboards -> result tables (Markdown, LaTeX booktabs, CSV, HTML) with relative change
against a reference model and paired-bootstrap confidence intervals."""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.formats.leaderboard import read_leaderboard_rows

FORMATS = ("md", "latex", "csv", "html")
LEADERBOARD_DIR = Path(__file__).resolve().parents[1] / "leaderboards"
# the published per-sample records beside the leaderboards (bench.results.SAMPLES_DIRNAME;
# not imported from there, which loads torch)
SAMPLES_DIRNAME = "samples"


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
    samples_dir: Path | None = None


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
    """All rows of a leaderboard CSV as strings; a missing or empty file is an error. The
    folder of its published per-sample records rides along in ``frame.attrs``."""
    if not path.is_file():
        raise BenchError(f"no leaderboard at {path}", "run `arbench run TASK --model REF` first")
    header, rows = read_leaderboard_rows(path)
    missing = [column for column in TABLE_COLUMNS if column not in header]
    if missing:
        raise BenchError(f"leaderboard {path} is not an arbench leaderboard: no column "
                         f"{missing[0]!r}", "give a CSV written by `arbench run`")
    if not rows:
        raise BenchError(f"leaderboard {path} has no rows")
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    frame.attrs["samples_dir"] = path.parent / SAMPLES_DIRNAME
    return frame


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
    samples_dir = frame.attrs.get("samples_dir")
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
                 reference, notes, samples_dir)


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


def read_samples(row: pd.Series, samples_dir: Path | None) -> pd.DataFrame | None:
    """A run's per-sample records: its ``samples.jsonl`` in ``results/`` when there, else
    the compact copy published beside the leaderboard (``samples/<task>/<run_id>.csv.gz``);
    None when neither exists."""
    path = Path(row.get("result_dir", "")) / "samples.jsonl"
    if row.get("result_dir", "") and path.is_file():
        return pd.read_json(path, lines=True, dtype={"id": str})
    if samples_dir is not None:
        compact = samples_dir / str(row.get("task", "")) / f"{row.get('run_id', '')}.csv.gz"
        if compact.is_file():
            return pd.read_csv(compact, dtype={"id": str}, keep_default_na=False,
                               na_values=["nan"])
    return None


def _per_sample(row: pd.Series, samples_dir: Path | None) -> dict[str, float] | None:
    key = row.get("primary_sample_key", "")
    records = read_samples(row, samples_dir) if key else None
    if records is None or key not in records:
        return None
    values = records[["id", key]].dropna()
    return dict(zip(values["id"].astype(str), values[key].astype(float), strict=True))


@dataclass
class Change:
    """Relative change (%) of a model's primary metric against the reference, with the
    paired-bootstrap 95% interval over ``n`` shared samples (nan and 0 without records)."""

    change: float
    low: float = float("nan")
    high: float = float("nan")
    n: int = 0


def change_stats(table: Table, with_ci: bool = True) -> tuple[dict[str, Change], list[str]]:
    """Per model, the change of the primary metric vs the reference (its interval when both
    runs' per-sample records exist), and the models whose records are missing."""
    if table.reference is None:
        return {}, []
    rows = table.rows.set_index("model")
    ref_row = rows.loc[table.reference]
    ref_value = float(ref_row[table.primary])
    ref_samples = _per_sample(ref_row, table.samples_dir) if with_ci else None
    missing = [table.reference] if with_ci and ref_samples is None else []
    stats = {}
    for model, row in rows.iterrows():
        if model == table.reference:
            continue
        stat = Change(relative_change(float(row[table.primary]), ref_value))
        samples = _per_sample(row, table.samples_dir) if with_ci else None
        if with_ci and samples is None:
            missing.append(model)
        if samples and ref_samples:
            shared = sorted(set(samples) & set(ref_samples))
            if shared:
                stat.change, stat.low, stat.high = paired_bootstrap(
                    np.array([samples[i] for i in shared]),
                    np.array([ref_samples[i] for i in shared]),
                )
                stat.n = len(shared)
        stats[model] = stat
    return stats, missing


def change_cells(table: Table, with_ci: bool,
                 stats: dict[str, Change] | None = None) -> dict[str, str]:
    """Per model, the relative change of the primary metric vs the reference (and CI), from
    ``stats`` when the caller has them already."""
    if stats is None:
        stats = change_stats(table, with_ci)[0]
    cells = {table.reference: "(reference)"} if table.reference is not None else {}
    for model, stat in stats.items():
        text = format_percent(stat.change)
        if stat.n:
            text += f" [{format_percent(stat.low)}, {format_percent(stat.high)}], N={stat.n}"
        cells[model] = text
    return cells


def missing_records_note(missing: list[str]) -> str | None:
    """The note a table carries when some of its runs have no per-sample records (so their
    change has no interval), or None."""
    if not missing:
        return None
    return (f"no per-sample records for {', '.join(missing)} (neither the run's results/ "
            "folder nor the leaderboard's samples/ folder has them): change shown without "
            "interval")


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
    stats, missing = change_stats(table, with_ci)
    change = change_cells(table, with_ci, stats)
    records_note = missing_records_note(missing)
    notes = table.notes + ([records_note] if records_note else [])
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
        return text + "".join(f"\n\n_{note}_" for note in notes) + "\n"
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
    notes_html = "".join(f"<p><em>{html.escape(n)}</em></p>\n" for n in notes)
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows_html}</tbody>\n"
            f"</table>\n{notes_html}")


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

