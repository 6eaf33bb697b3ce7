"""Re-scoring a run's saved predictions with its task's metrics, no model needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def rescore(run_dir: str | Path, overrides: list[str] | None = None, *,
            out_dir: str | Path | None = None, **options: Any) -> Any:
    """Score the predictions a finished ``--save-predictions`` run wrote, with the run's
    spec (``predictions/spec.yaml``) plus ``overrides``, on the same samples (limit, batch
    size, seed). Returns the new Result; its run folder sits beside the original's (or
    under ``out_dir``) and its leaderboard row carries the new parameters' comparability
    key. ``options`` are passed to :func:`bench.runner.evaluate` (device, leaderboard ...).
    """
    from bench.runner import evaluate

    run_dir = Path(run_dir)
    folder = run_dir / "predictions"
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise BenchError(f"{run_dir} holds no saved predictions (no {manifest_path.name} in "
                         f"{folder})", "run the model with --save-predictions first")
    if not (run_dir / "result.json").is_file():
        raise BenchError(f"run {run_dir} is unfinished: its predictions are partial",
                         "finish it with `arbench run TASK --model REF --resume RUN_DIR`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return evaluate(
        folder / "spec.yaml", None, overrides=overrides,
        predictions=str(folder / manifest["target"]), name=manifest["model_name"],
        batch_size=manifest["batch_size"], limit=manifest["limit"], seed=manifest["seed"],
        out_dir=out_dir if out_dir is not None else run_dir.parents[2], **options)
