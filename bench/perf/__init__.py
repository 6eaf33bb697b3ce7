"""`arbench perf`: speed cases, one module per family, registered in ``PERF_CASES``."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], rounds: int) -> float:
    """The shortest wall time (s) of ``rounds`` calls of ``fn``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
