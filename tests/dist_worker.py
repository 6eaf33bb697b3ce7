"""A torchrun-like worker for tests/test_distributed.py (spawned, one process per rank)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.distributed as dist


def evaluate_rank(rank: int, world: int, port: int, out: str, model: str) -> None:
    """Run ``evaluate`` as rank ``rank`` of ``world`` (gloo) and save its metrics as JSON."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from bench import evaluate

    result = evaluate("digits", model, device="cpu", progress=False, out_dir=Path(out),
                      leaderboard_dir=Path(out) / "boards", batch_size=50)
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"metrics": result.metrics, "n": result.n_samples, "dir": str(result.out_dir)}))
    dist.destroy_process_group()
