"""The renderer's perf case measures both sides; the depth case's interleaved timer."""

from __future__ import annotations

import time

from bench.perf.depth import interleaved
from bench.perf.render import render_times


def test_render_times_measure_render_and_bare_cast() -> None:
    render, cast = render_times(64, 48, frames=1, rounds=1)
    assert 0 < cast < 5 and 0 < render < 5


def test_interleaved_returns_each_sides_best_time() -> None:
    calls: list[str] = []

    def ours() -> None:
        calls.append("ours")
        time.sleep(0.01)

    def plain() -> None:
        calls.append("plain")
        time.sleep(0.03)

    fast, slow = interleaved(ours, plain, rounds=2)
    assert calls == ["ours", "plain", "ours", "plain"]
    assert 0.01 <= fast < slow and slow >= 0.03
