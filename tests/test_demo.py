"""`arbench demo`: leaderboards, the README of tables, and published figures."""

from __future__ import annotations

from pathlib import Path

from bench.demo import run_demo
from bench.metrics.matching import MatchingMetric


def test_demo_writes_tables_and_figures(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    readme = run_demo(["digits"], out_dir=tmp_path / "results", leaderboard_dir=boards)
    text = readme.read_text()
    assert "## digits" in text
    assert "| model | accuracy ↑ |" in text
    assert "accuracy vs" not in text  # digits names no reference model
    figure = boards / "figures" / "digits" / "resnet-small" / "confusion_matrix.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert "](figures/digits/resnet-small/confusion_matrix.png)" in text
    assert len((boards / "digits.csv").read_text().splitlines()) == 5


def test_matching_comparison_figure(tmp_path: Path) -> None:
    curve = {"thresholds_px": [1, 2, 3], "mma_all": [0.2, 0.5, 0.7],
             "mma_i": [0.3, 0.6, 0.8], "mma_v": [0.1, 0.4, 0.6]}
    (path,) = MatchingMetric.comparison_figures(
        {"sift": {"mma_curve": curve}, "orb": {"mma_curve": curve}}, tmp_path)
    assert path == tmp_path / "mma_comparison.png"
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert MatchingMetric.comparison_figures({"sift": {}}, tmp_path / "none") == []
