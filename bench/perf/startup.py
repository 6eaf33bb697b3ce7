"""Startup: wall time of a fresh ``python -m bench`` process per command against its goal.

Each command runs ``repeats`` times in a new interpreter (output discarded); the median
wall time is compared with the goal of issue 14. The numbers include interpreter start and
every import the command needs, which is what a user waits for. The median CPU time
(user + system of the child) is shown beside it: on a machine busy with other work it
moves much less than the wall time. (No memory column: a child's peak resident size, as
the kernel reports it, includes the forked image of this process.)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench.errors import BenchError
from bench.registry import PERF_CASES

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
DIGITS_SPEC = Path(__file__).resolve().parents[1] / "tasks" / "digits.yaml"

# (arguments after `arbench`, goal in seconds for the median wall time)
COMMANDS: list[tuple[list[str], float]] = [
    (["--help"], 0.3),
    (["table", "digits"], 1.0),
    (["list"], 2.0),
    (["validate", str(DIGITS_SPEC), "--no-smoke"], 1.5),
]
# floors to read the goals against: interpreter start, and the torch import that no
# command above needs any more (`validate` checks metrics by their declarations)
REFERENCES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import torch'", ["-c", "import torch"]),
]


class Runs(NamedTuple):
    """Per fresh process: wall seconds and CPU seconds (user + system)."""

    wall: list[float]
    cpu: list[float]


def time_processes(python_args: list[str], repeats: int) -> Runs:
    """Wall and CPU time of ``repeats`` fresh ``python PYTHON_ARGS``
    processes, this package first on the path; a failing run raises, naming the command."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    runs = Runs([], [])
    for _ in range(repeats):
        with tempfile.TemporaryFile("w+") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, *python_args], env=env,
                                       stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            runs.wall.append(time.perf_counter() - start)
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, by wait4
            runs.cpu.append(usage.ru_utime + usage.ru_stime)
            if process.returncode != 0:
                stderr.seek(0)
                last = (stderr.read().strip().splitlines() or ["no output"])[-1]
                raise BenchError(f"`python {' '.join(python_args)}` exited "
                                 f"{process.returncode}: {last}")
    return runs


def _row(command: str, runs: Runs, goal: float | None) -> dict:
    median = statistics.median(runs.wall)
    return {"command": command, "median wall s": f"{median:.2f}",
            "min wall s": f"{min(runs.wall):.2f}",
            "median CPU s": f"{statistics.median(runs.cpu):.2f}",
            "goal s": "" if goal is None else f"< {goal:g}",
            "met": "" if goal is None else ("yes" if median < goal else "no")}


@PERF_CASES.register("startup")
def case(device: str | None = None, repeats: int = 5) -> list[dict]:
    """Wall time of a fresh `arbench --help | table digits | list | validate digits
    --no-smoke` process, median of ``repeats``, against the goals of issue 14."""
    rows = [_row(f"{label} (floor)", time_processes(argv, repeats), None)
            for label, argv in REFERENCES]
    for argv, goal in COMMANDS:
        shown = " ".join(Path(a).name if a == str(DIGITS_SPEC) else a for a in argv)
        rows.append(_row(f"arbench {shown}", time_processes(["-m", "bench", *argv], repeats),
                         goal))
    return rows
