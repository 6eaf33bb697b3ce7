"""The evaluation loop end to end on the embedded digits: files, leaderboard, failures."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from bench import Result, evaluate
from bench.errors import BenchError, DataError, ModelError


def rows(run_dirs: dict, task: str = "digits") -> list[dict]:
    path = run_dirs["leaderboard_dir"] / f"{task}.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_writes_result_samples_and_one_row(run_dirs: dict) -> None:
    result = evaluate("digits", "baseline:lecture-cnn", progress=False, **run_dirs)
    assert isinstance(result, Result) and result.n_samples == 360
    assert result.out_dir.parent == run_dirs["out_dir"] / "digits" / "lecture-cnn"
    saved = json.loads((result.out_dir / "result.json").read_text())
    assert saved["metrics"] == pytest.approx(result.metrics)
    assert saved["metadata"]["dataset_fingerprint"] == result.metadata["dataset_fingerprint"]
    records = [json.loads(line) for line in (result.out_dir / "samples.jsonl").open()]
    assert len(records) == 360 and len({r["id"] for r in records}) == 360
    # The primary metric is the mean of its per-sample records.
    assert sum(r["correct"] for r in records) / 360 == pytest.approx(result.metrics["accuracy"])
    assert (result.out_dir / "figures" / "confusion_matrix.png").is_file()
    (row,) = rows(run_dirs)
    assert row["model"] == "lecture-cnn" and row["n_samples"] == "360"
    assert float(row["accuracy"]) == pytest.approx(result.metrics["accuracy"], abs=1e-6)
    assert row["comparability_key"] == result.comparability_key
    assert row["device"].startswith(("cpu", "NVIDIA"))
    for column in ("spec_hash", "dataset_fingerprint", "model_fingerprint", "torch_version",
                   "git_commit", "wall_s", "samples_per_s", "metric_versions"):
        assert row[column], column
    assert result.metrics["accuracy"] > 0.95


def test_limit_batch_size_and_seed_change_only_what_they_should(run_dirs: dict) -> None:
    full = evaluate("digits", "lenet5", progress=False, limit=100, **run_dirs)
    small_batches = evaluate("digits", "lenet5", progress=False, limit=100, batch_size=7,
                             seed=3, **run_dirs)
    assert full.n_samples == small_batches.n_samples == 100
    assert full.metrics == pytest.approx(small_batches.metrics)
    assert full.comparability_key == small_batches.comparability_key
    whole = evaluate("digits", "lenet5", progress=False, leaderboard=False, **run_dirs)
    assert whole.comparability_key != full.comparability_key
    assert len(rows(run_dirs)) == 2


def test_overrides_reach_the_adapter(run_dirs: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "elsewhere")):
        evaluate("mnist", "lenet5", overrides=[f"dataset.root={tmp_path / 'elsewhere'}"],
                 progress=False, **run_dirs)


def test_failed_run_leaves_no_row_and_no_result_dir(run_dirs: dict) -> None:
    with pytest.raises(ModelError, match=r"failed on task .digits., batch 2 .*RuntimeError"):
        evaluate("digits", "nets:fails_later", batch_size=100, progress=False, **run_dirs)
    assert rows(run_dirs) == []
    assert not list((run_dirs["out_dir"] / "digits").rglob("result.json"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_leaderboard_fails_before_running(run_dirs: dict) -> None:
    board = run_dirs["leaderboard_dir"]
    board.mkdir(parents=True)
    board.chmod(0o500)
    try:
        with pytest.raises(BenchError, match="not writable"):
            evaluate("digits", "lenet5", progress=False, **run_dirs)
    finally:
        board.chmod(0o700)


def test_leaderboard_that_is_a_directory_is_a_clear_error(run_dirs: dict) -> None:
    (run_dirs["leaderboard_dir"] / "digits.csv").mkdir(parents=True)
    with pytest.raises(BenchError, match="cannot read leaderboard .*digits.csv"):
        evaluate("digits", "lenet5", limit=10, progress=False, **run_dirs)
    assert not run_dirs["out_dir"].exists()  # refused before any work


def test_empty_dataset_is_an_error(run_dirs: dict, tmp_path: Path) -> None:
    from bench.synth.digits import write_idx

    root = tmp_path / "empty"
    root.mkdir()
    write_idx(root / "t10k-images-idx3-ubyte", torch.zeros(0, 28, 28).numpy())
    write_idx(root / "t10k-labels-idx1-ubyte", torch.zeros(0).numpy())
    with pytest.raises(DataError, match="is empty"):
        evaluate("mnist", "lenet5", overrides=[f"dataset.root={root}"], progress=False,
                 **run_dirs)


def test_bad_device_and_limit(run_dirs: dict) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="CUDA is not available"):
            evaluate("digits", "lenet5", device="cuda", progress=False, **run_dirs)
    with pytest.raises(BenchError, match="--limit must be at least 1"):
        evaluate("digits", "lenet5", limit=0, progress=False, **run_dirs)


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 0}, "--batch-size must be a whole number of at least 1, got 0"),
    ({"overrides": ["protocol.batch_size=0"]}, "protocol.batch_size must be .* got 0"),
    ({"overrides": ["protocol.batch_size=abc"]}, "protocol.batch_size must be .* got 'abc'"),
    ({"workers": -1}, "--workers must be 0 or more"),
    ({"seed": -1}, r"--seed must be in \[0, 2\*\*32\)"),
    ({"device": "bogus"}, "unknown device 'bogus'"),
])
def test_run_options_that_would_be_replaced_or_crash_are_refused(
        run_dirs: dict, options: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        evaluate("digits", "lenet5", progress=False, **run_dirs, **options)
    assert not run_dirs["out_dir"].exists()
    assert not run_dirs["leaderboard_dir"].exists()
