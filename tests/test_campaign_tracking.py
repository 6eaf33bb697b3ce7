"""Experiment trackers (issue 15, part 5): a run recorded in MLflow's local file store."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.runner import evaluate

mlflow = pytest.importorskip("mlflow")


def test_a_run_is_recorded_in_the_mlflow_file_store(tmp_path: Path):
    from bench.campaign.tracking import log_to_mlflow

    result = evaluate("digits", "logreg", limit=30, batch_size=16, save_predictions=True,
                      leaderboard=False, progress=False, out_dir=tmp_path / "results")
    run_id = log_to_mlflow(result)
    store = tmp_path / "results" / "mlruns"
    assert store.is_dir()
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    run = client.get_run(run_id)
    assert run.data.metrics == pytest.approx(result.metrics)
    assert run.data.params["task"] == "digits"
    assert run.data.params["spec_hash"] == result.metadata["spec_hash"]
    assert run.data.params["model_fingerprint"] == result.metadata["model_fingerprint"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"result.json", "samples.jsonl", "predictions", "figures"} <= artifacts
    saved = {a.path for a in client.list_artifacts(run_id, "predictions")}
    assert "predictions/predictions.csv" in saved
