"""Result tables: comparable rows only, best/latest, formats, relative change and CI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import BenchError
from bench.tables import (
    build_table,
    format_percent,
    paired_bootstrap,
    read_leaderboard,
    relative_change,
    render,
)


def frame(tmp_path: Path) -> pd.DataFrame:
    base = {"task": "t", "primary_metric": "matches", "metrics": "matches;error",
            "lower_is_better": "error", "primary_sample_key": "matches"}
    rows = [
        dict(base, model="sift", matches="60.2", error="2.0", comparability_key="k",
             timestamp="2026-01-01T00:00:01"),
        dict(base, model="lift", matches="90.0", error="1.5", comparability_key="k",
             timestamp="2026-01-01T00:00:02"),
        dict(base, model="lift", matches="98.6", error="1.0", comparability_key="k",
             timestamp="2026-01-01T00:00:03"),
        dict(base, model="orb", matches="10.0", error="9.0", comparability_key="other",
             timestamp="2026-01-01T00:00:00"),
    ]
    for row in rows:
        run = tmp_path / f"{row['model']}-{row['matches']}"
        run.mkdir()
        values = np.full(4, float(row["matches"]))
        run.joinpath("samples.jsonl").write_text("".join(
            json.dumps({"id": f"s{i}", "matches": v}) + "\n" for i, v in enumerate(values)))
        row["result_dir"] = str(run)
    return pd.DataFrame(rows)


def test_relative_change_is_the_lectures_plus_64_percent() -> None:
    assert format_percent(relative_change(98.6, 60.2)) == "+64%"
    assert format_percent(relative_change(57.0, 60.0)) == "-5.0%"
    assert format_percent(relative_change(1.0, 0.0)) == "n/a"


def test_best_and_latest_runs_of_comparable_rows(tmp_path: Path) -> None:
    data = frame(tmp_path)
    best = build_table(data, runs="best")
    assert list(best.rows["model"]) == ["lift", "sift"]
    assert best.rows.loc[0, "matches"] == 98.6
    assert best.notes == ["1 row(s) with another comparability key (other protocol, data, "
                          "metric version or sample count) left out"]
    latest = build_table(data.iloc[[0, 1, 3]], runs="latest", key="k")
    assert latest.rows.set_index("model").loc["lift", "matches"] == 90.0
    with pytest.raises(BenchError, match="reference model 'orb' has no comparable row"):
        build_table(data, reference="orb")


def test_a_limited_run_does_not_hide_full_runs(tmp_path: Path) -> None:
    data = frame(tmp_path)
    data["limit"] = ["", "", "", "10"]
    data.loc[3, "timestamp"] = "2026-01-02T00:00:00"
    assert list(build_table(data).rows["model"]) == ["lift", "sift"]
    data["limit"] = "10"
    assert list(build_table(data).rows["model"]) == ["orb"]


def test_markdown_with_reference_and_ci(tmp_path: Path) -> None:
    table = build_table(frame(tmp_path), reference="sift")
    text = render(table, "md", with_ci=True)
    lines = text.splitlines()
    assert lines[0] == "| model | matches ↑ | error ↓ | matches vs sift |"
    # Constant per-sample values: the bootstrap interval collapses onto the point estimate.
    assert lines[2] == "| lift | **98.6** | **1.0000** | +64% [+64%, +64%], N=4 |"
    assert lines[3] == "| sift | 60.2 | 2.0000 | (reference) |"


def test_other_formats(tmp_path: Path) -> None:
    table = build_table(frame(tmp_path), reference="sift")
    latex = render(table, "latex")
    assert latex.startswith(r"\begin{tabular}{lrrr}" + "\n" + r"\toprule")
    assert r"\textbf{98.6}" in latex and r"+64\%" in latex and r"\bottomrule" in latex
    assert render(table, "csv").splitlines()[1] == "lift,98.6,1.0000,+64%"
    html = render(table, "html")
    assert "<td><b>98.6</b></td>" in html and html.startswith("<table>")
    with pytest.raises(BenchError, match="unknown table format"):
        render(table, "xlsx")


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(10.0, 1.0, 500)
    values = reference * 1.2 + rng.normal(0.0, 0.1, 500)
    change, low, high = paired_bootstrap(values, reference)
    assert change == pytest.approx(20.0, abs=0.5)
    assert low < change < high
    assert high - low < 1.0
    assert paired_bootstrap(values, reference) == (change, low, high)


def test_model_names_are_escaped_per_format(tmp_path: Path) -> None:
    rows = frame(tmp_path)
    hostile = "a|b\nc & 50% my_net <script>x</script>"
    rows.loc[rows["model"] == "lift", "model"] = hostile
    table = build_table(rows, reference="sift")
    markdown = render(table, "md")
    row = next(line for line in markdown.splitlines() if line.startswith("| a"))
    assert row.startswith(r"| a\|b c & 50% my_net \<script\>x\</script\> |")
    assert row.count(" | ") == 3  # model, matches, error, change: still four cells
    latex = render(table, "latex")
    assert r"a|b c \& 50\% my\_net <script>x</script>" in latex
    html = render(table, "html")
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    assert hostile.replace("\n", " ") in render(table, "csv").replace("\n", " ")


# ------------------------------------------- published per-sample records (fresh clone)

def published_board(tmp_path: Path, with_records: set[str]) -> Path:
    """A leaderboard whose rows point at a results/ folder that does not exist (a fresh
    clone), with compact records under samples/<task>/<run_id>.csv.gz for some models."""
    board = tmp_path / "leaderboards"
    (board / "samples" / "t").mkdir(parents=True)
    header = ("run_id,timestamp,task,model,primary_metric,correct,metrics,primary_sample_key,"
              "lower_is_better,comparability_key,result_dir\n")
    rows = []
    for run_id, model, hits in (("r1", "logreg", [1, 0, 1, 0]), ("r2", "cnn", [1, 1, 1, 0])):
        rows.append(f"{run_id},2026-01-01T00:00:0{run_id[1]},t,{model},correct,"
                    f"{np.mean(hits)},correct,correct,,k,results/t/{model}/{run_id}\n")
        if model in with_records:
            text = "id,correct\n" + "".join(f"s{i},{h}\n" for i, h in enumerate(hits))
            with gzip.open(board / "samples" / "t" / f"{run_id}.csv.gz", "wt") as handle:
                handle.write(text)
    (board / "t.csv").write_text(header + "".join(rows))
    return board / "t.csv"


def test_a_fresh_clone_gets_its_interval_from_the_published_records(tmp_path: Path) -> None:
    path = published_board(tmp_path, {"logreg", "cnn"})
    table = build_table(read_leaderboard(path), reference="logreg")
    text = render(table, "md", with_ci=True)
    # cnn 0.75 vs logreg 0.5 -> +50%; the bootstrap interval comes from the 4 records.
    assert "| cnn | **0.7500** | +50% [" in text and "], N=4 |" in text
    assert "no per-sample records" not in text


def test_missing_records_are_said_in_the_note(tmp_path: Path) -> None:
    path = published_board(tmp_path, {"logreg"})
    table = build_table(read_leaderboard(path), reference="logreg")
    lines = render(table, "md", with_ci=True).splitlines()
    assert lines[2] == "| cnn | **0.7500** | +50% |"
    assert lines[-1] == ("_no per-sample records for cnn (neither the run's results/ folder "
                         "nor the leaderboard's samples/ folder has them): change shown "
                         "without interval_")
    assert "no per-sample records" not in render(table, "md", with_ci=False)
