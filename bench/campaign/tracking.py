"""Experiment trackers (optional extra ``pip install -e '.[mlflow]'``): a finished run
recorded in MLflow, by default in a local file store (no server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def log_to_mlflow(result: Any, tracking_uri: str | None = None,
                  experiment: str = "arbench") -> str:
    """Record ``result`` as an MLflow run: params (task, spec and protocol hashes, model
    reference and fingerprint, data fingerprint, limit, seed), its scalar metrics, and
    ``result.json``, ``samples.jsonl``, figures and saved predictions as artifacts.

    ``tracking_uri`` defaults to a file store ``mlruns/`` in the results folder
    (``OUT/mlruns``). Returns the MLflow run id.
    """
    try:
        import mlflow
    except ImportError as exc:
        raise BenchError("--log mlflow needs MLflow",
                         "pip install -e '.[mlflow]' (or pip install mlflow-skinny)") from exc
    run_dir = Path(result.out_dir)
    uri = tracking_uri or (run_dir.parents[2] / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):
        # MLflow 3 keeps its file store in maintenance mode behind this switch
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    meta = result.metadata
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{result.task}/{result.model}/{result.run_id}") as run:
        mlflow.log_params({
            "task": result.task, "model": result.model, "run_id": result.run_id,
            "spec_hash": meta["spec_hash"], "protocol_hash": meta["protocol_hash"],
            "comparability_key": result.comparability_key, "model_ref": meta["model_ref"],
            "model_kind": meta["model_kind"], "model_fingerprint": meta["model_fingerprint"],
            "dataset_fingerprint": meta["dataset_fingerprint"], "n_samples": result.n_samples,
            "limit": meta.get("limit"), "seed": meta.get("seed"), "device": meta.get("device"),
        })
        mlflow.log_metrics({name: float(value) for name, value in result.metrics.items()})
        for name in ("result.json", "samples.jsonl"):
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name))
        for folder in ("figures", "predictions"):
            if (run_dir / folder).is_dir():
                mlflow.log_artifacts(str(run_dir / folder), artifact_path=folder)
        return run.info.run_id
