"""Shared fixtures: isolated leaderboards and results directories per test; the embedded
sets build in the background while the tests go."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SET_BUILDER = pytest.StashKey[subprocess.Popen | None]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the missing embedded sets in a process at the lowest CPU priority, as `make
    demo` does: a test that reads a set finds it built, or waits on its build lock, instead of
    building it on the tests' own time."""
    from bench.demo import build_sets_in_background
    from bench.registry import EMBEDDED

    session.config.stash[SET_BUILDER] = build_sets_in_background(EMBEDDED.names())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the builder when the tests end first (a killed build's marked temporary folder
    is removed by the next build of that set)."""
    builder = session.config.stash.get(SET_BUILDER, None)
    if builder is not None:
        builder.terminate()
        builder.wait()


@pytest.fixture()
def run_dirs(tmp_path: Path) -> dict[str, Path]:
    """Fresh ``out_dir`` and ``leaderboard_dir`` for a test's evaluate() calls."""
    return {"out_dir": tmp_path / "results", "leaderboard_dir": tmp_path / "leaderboards"}
