"""torch.distributed sharding: two gloo processes give the single-process result
(spawned in-process for digits, and under torchrun for two tasks of other state kinds)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import dist_worker
import pytest
import torch.multiprocessing as mp
from test_sharding import assert_same

from bench import evaluate

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_equal_one_process(tmp_path: Path, run_dirs: dict) -> None:
    single = evaluate("digits", "lenet5", device="cpu", progress=False, **run_dirs)
    mp.spawn(dist_worker.evaluate_rank, args=(2, free_port(), str(tmp_path), "lenet5"),
             nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank in ranks:
        assert rank["n"] == 360
        assert rank["metrics"] == pytest.approx(single.metrics, abs=1e-9)
    run_dir = Path(ranks[0]["dir"])
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    assert sorted(r["id"] for r in records) == sorted(
        json.loads(line)["id"] for line in (single.out_dir / "samples.jsonl").open())
    assert not list(run_dir.glob("samples.rank*.jsonl"))
    with open(tmp_path / "boards" / "digits.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["comparability_key"] == single.comparability_key


# Sum states (counts, confusion) under two ranks: test_two_ranks_equal_one_process.
@pytest.mark.parametrize(("task", "model", "limit", "tolerance"), [
    ("synthetic-davis-vos", "first-frame", None, 0.0),  # cat rows + synced names and sheets
    ("synthetic-davis-depth", "constant-median", 10, 1e-12),  # float sums + figure samples
])
def test_torchrun_two_ranks_equal_one_process(tmp_path: Path, task: str, model: str,
                                              limit: int | None, tolerance: float) -> None:
    single = evaluate(task, model, device="cpu", progress=False, limit=limit,
                      leaderboard=False, out_dir=tmp_path / "single")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "bench", "run", task, "--model", model,
               "--device", "cpu", "--no-leaderboard", "--out", str(tmp_path / "ranks")]
    if limit:
        command += ["--limit", str(limit)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (result_file,) = (tmp_path / "ranks").glob(f"{task}/*/*/result.json")
    sharded = json.loads(result_file.read_text())
    whole = json.loads((single.out_dir / "result.json").read_text())
    assert sharded["n_samples"] == whole["n_samples"]
    assert_same(whole["metrics"], sharded["metrics"], tolerance, "metrics")
    assert_same(whole["details"], sharded["details"], tolerance, "details")
    assert ([Path(p).name for p in sharded["figures"]]
            == [Path(p).name for p in whole["figures"]])
    ids = [json.loads(line)["id"] for line in (result_file.parent / "samples.jsonl").open()]
    assert ids == [json.loads(line)["id"] for line in (single.out_dir / "samples.jsonl").open()]
