"""Shared fixtures: isolated leaderboards and results directories per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def run_dirs(tmp_path: Path) -> dict[str, Path]:
    """Fresh ``out_dir`` and ``leaderboard_dir`` for a test's evaluate() calls."""
    return {"out_dir": tmp_path / "results", "leaderboard_dir": tmp_path / "leaderboards"}
