"""The leaderboard CSV: one header, one row per run, UTF-8; read back only when exact."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def read_leaderboard_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and rows of a leaderboard CSV (empty when absent), refusing anything the
    appender would not write back exactly: a repeated, empty or missing header, a row with
    more or fewer cells than the header, text that is not UTF-8 or not CSV."""
    if not path.exists():
        return [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle, strict=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"leaderboard {path} is not a UTF-8 CSV file arbench wrote: {exc}",
                         "move it aside, or pass --leaderboard-dir DIR") from exc
    except OSError as exc:
        raise BenchError(f"cannot read leaderboard {path}: {exc.strerror or exc}",
                         "check the path, or pass --no-leaderboard") from exc
    if not table:
        raise BenchError(f"leaderboard {path} is empty (no header)",
                         "remove the empty file, or pass --leaderboard-dir DIR")
    header, body = table[0], table[1:]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated or "" in header:
        what = f"repeats column {repeated[0]!r}" if repeated else "has an empty column name"
        raise BenchError(f"leaderboard {path}: its header {what}; arbench leaves it unchanged",
                         "move it aside, or pass --leaderboard-dir DIR")
    for number, cells in enumerate(body, start=2):
        if len(cells) != len(header):
            raise BenchError(f"leaderboard {path}:{number}: {len(cells)} cells for "
                             f"{len(header)} columns; arbench leaves it unchanged",
                             "repair or move the file aside, or pass --leaderboard-dir DIR")
    return header, [dict(zip(header, cells, strict=True)) for cells in body]
