"""Startup: wall time of a fresh ``python -m bench`` process per command against its goal.

Each command runs ``repeats`` times in a new interpreter (output discarded); the median
is compared with the goal of issue 14. The numbers include interpreter start and every
import the command needs, which is what a user waits for.
"""

from __future__ import annotations

import os
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


def wall_times(argv: list[str], repeats: int) -> list[float]:
    """Seconds of ``repeats`` fresh ``python -m bench ARGV`` processes; a failure raises."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "bench", *argv]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"`arbench {' '.join(argv)}` exited {done.returncode}: {last}")
    return seconds


@PERF_CASES.register("startup")
def case(device: str | None = None, repeats: int = 5) -> list[dict]:
    """Wall time of a fresh `arbench --help | table digits | list | validate digits
    --no-smoke` process, median of ``repeats``, against the goals of issue 14."""
    rows = []
    for argv, goal in COMMANDS:
        seconds = wall_times(argv, repeats)
        median = statistics.median(seconds)
        shown = " ".join(Path(a).name if a == str(DIGITS_SPEC) else a for a in argv)
        rows.append({"command": f"arbench {shown}", "median s": f"{median:.2f}",
                     "min s": f"{min(seconds):.2f}", "goal s": f"< {goal:g}",
                     "met": "yes" if median < goal else "no"})
    return rows
