"""Leaderboard appends: atomic, locked, widening, formula-safe; nothing lost or half-written."""

from __future__ import annotations

import csv
import multiprocessing
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.results import append_leaderboard, neutralise_cell


def read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_neutralise_cell() -> None:
    assert neutralise_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert neutralise_cell("+cmd") == "'+cmd"
    assert neutralise_cell("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise_cell("-0.25") == "-0.25"
    assert neutralise_cell("lenet5") == "lenet5"
    assert neutralise_cell(3) == 3


def test_append_widens_header_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "board.csv"
    append_leaderboard(path, {"model": "a", "accuracy": "0.5"})
    append_leaderboard(path, {"model": "=evil()", "accuracy": "0.7", "ece": "0.1"})
    first, second = read(path)
    assert first == {"model": "a", "accuracy": "0.5", "ece": ""}
    assert second == {"model": "'=evil()", "accuracy": "0.7", "ece": "0.1"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".board.csv.")]


def _append_many(args: tuple[str, int]) -> None:
    path, worker = args
    for index in range(10):
        append_leaderboard(Path(path), {"worker": worker, "index": index})


def test_concurrent_appends_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "board.csv"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(str(path), worker) for worker in range(4)])
    rows = read(path)
    assert len(rows) == 40
    assert {(r["worker"], r["index"]) for r in rows} == {
        (str(w), str(i)) for w in range(4) for i in range(10)}


def test_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "board.csv"
    append_leaderboard(path, {"model": "a"})
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("bench.results.os.replace", broken_replace)
    with pytest.raises(BenchError, match="cannot append to leaderboard .*disk full"):
        append_leaderboard(path, {"model": "b"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["board.csv"]


@pytest.mark.parametrize("content, problem", [
    (b"model,accuracy,model\na,0.5,b\n", "repeats column 'model'"),
    (b"model,accuracy\na,0.5,extra\n", r"board.csv:2: 3 cells for 2 columns"),
    (b"model,accuracy\na\n", r"board.csv:2: 1 cells for 2 columns"),
    (b"model,,accuracy\na,b,0.5\n", "empty column name"),
    (b"model,accuracy\n\xff\xfe,0.5\n", "not a UTF-8 CSV"),
    (b"", "is empty"),
])
def test_a_leaderboard_it_does_not_fully_understand_is_left_unchanged(
        tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "board.csv"
    path.write_bytes(content)
    with pytest.raises(BenchError, match=problem):
        append_leaderboard(path, {"model": "c", "accuracy": "0.9"})
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.csv", "board.csv.lock"]


def test_a_bad_leaderboard_stops_the_run_before_any_work(tmp_path: Path) -> None:
    from bench.runner import evaluate

    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "digits.csv").write_bytes(b"model,model\na,b\n")
    with pytest.raises(BenchError, match="repeats column 'model'"):
        evaluate("digits", "logreg", limit=2, progress=False, out_dir=tmp_path / "results",
                 leaderboard_dir=boards)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["../escape.csv", "/etc/passwd", "sub/board.csv", "board.txt"])
def test_a_spec_leaderboard_is_a_plain_file_name(tmp_path: Path, name: str) -> None:
    from bench.errors import SpecError
    from bench.spec import load_spec

    with pytest.raises(SpecError, match="leaderboard"):
        load_spec("digits", [f"leaderboard={name}"])
