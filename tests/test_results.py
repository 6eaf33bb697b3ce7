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
