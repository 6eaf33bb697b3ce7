"""Startup: wall time of a fresh ``python -m bench`` process per command against its goal.

Each command runs ``repeats`` times in a new interpreter (output discarded); the median
wall time is compared with the goal of issue 14. The numbers include interpreter start and
every import the command needs, which is what a user waits for. The median CPU time
(user + system of the child) is shown beside it: on a machine busy with other work it
moves much less than the wall time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
# floors to read the goals against: interpreter start, and the torch import that
# `validate` needs to build the spec's metrics
REFERENCES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import torch'", ["-c", "import torch"]),
]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_and_cpu_times(python_args: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """(wall s, CPU s) of ``repeats`` fresh ``python PYTHON_ARGS`` processes, this package
    first on the path; a failing run raises, naming the command."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, *python_args]
    wall, cpu = [], []
    for _ in range(repeats):
        cpu_start, start = _children_cpu_s(), time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        wall.append(time.perf_counter() - start)
        cpu.append(_children_cpu_s() - cpu_start)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"`python {' '.join(python_args)}` exited {done.returncode}: {last}")
    return wall, cpu


@PERF_CASES.register("startup")
def case(device: str | None = None, repeats: int = 5) -> list[dict]:
    """Wall time of a fresh `arbench --help | table digits | list | validate digits
    --no-smoke` process, median of ``repeats``, against the goals of issue 14."""
    rows = []
    for label, argv in REFERENCES:
        wall, cpu = wall_and_cpu_times(argv, repeats)
        rows.append({"command": f"{label} (floor)",
                     "median wall s": f"{statistics.median(wall):.2f}",
                     "min wall s": f"{min(wall):.2f}",
                     "median CPU s": f"{statistics.median(cpu):.2f}", "goal s": "", "met": ""})
    for argv, goal in COMMANDS:
        wall, cpu = wall_and_cpu_times(["-m", "bench", *argv], repeats)
        median = statistics.median(wall)
        shown = " ".join(Path(a).name if a == str(DIGITS_SPEC) else a for a in argv)
        rows.append({"command": f"arbench {shown}", "median wall s": f"{median:.2f}",
                     "min wall s": f"{min(wall):.2f}",
                     "median CPU s": f"{statistics.median(cpu):.2f}",
                     "goal s": f"< {goal:g}", "met": "yes" if median < goal else "no"})
    return rows
