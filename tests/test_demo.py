"""`arbench demo`: leaderboards, the README of tables, and published figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.demo import build_embedded_sets, run_demo
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


def test_embedded_sets_built_in_processes_equal_one_by_one_builds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sets built at once in worker processes hold the same files, byte for byte (the
    manifests' checksums), as builds one after the other; built sets are not rebuilt."""
    manifests = {}
    for workers in (1, 2):
        monkeypatch.setenv("ARBENCH_DATA", str(tmp_path / f"data{workers}"))
        build_embedded_sets(["digits", "synthetic-places", "digits"], workers=workers)
        manifests[workers] = {name: json.loads(
            (tmp_path / f"data{workers}" / name / "MANIFEST.json").read_text())
            for name in ("digits", "synthetic-places")}
    for name, manifest in manifests[1].items():
        assert manifest["files"] == manifests[2][name]["files"] and manifest["files"]
    built = (tmp_path / "data2" / "digits" / "MANIFEST.json").stat().st_mtime_ns
    build_embedded_sets(["digits", "synthetic-places"], workers=2)
    assert (tmp_path / "data2" / "digits" / "MANIFEST.json").stat().st_mtime_ns == built
