"""torch.distributed sharding: two gloo processes give the single-process result."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import dist_worker
import pytest
import torch.multiprocessing as mp

from bench import evaluate


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
