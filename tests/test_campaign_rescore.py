"""Saved predictions (issue 15, part 2): every family writes its own --predictions format
batch by batch, and re-scoring it with unchanged parameters gives exactly the run's metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.campaign.rescore import rescore
from bench.errors import BenchError
from bench.runner import evaluate

# (task, cheap baseline, limit, batch size, what the predictions are): one per family
CASES = [
    ("digits", "logreg", 40, 16, "predictions.csv"),
    ("synthetic-shapes", "pointnet", 12, 8, "predictions.csv"),
    ("synthetic-depth", "constant-median", 6, 4, "depth"),
    ("synthetic-hands", "mean-hand", 20, 8, "pred.json"),
    ("synthetic-pose", "oracle-rot3", 20, 8, "results.csv"),
    ("matching-homography", "orb", 3, 1, "features"),
    ("synthetic-retrieval", "color-hist", 40, 32, "descriptors.npy"),
    ("synthetic-places", "color-hist", None, 32, "descriptors.npy"),
    ("synthetic-shapes3d", "mean-shape", 3, 2, "shapes"),
    ("synthetic-davis-vos", "first-frame", 2, 1, "results"),
    ("synthetic-rooms", "mean-layout", 6, 4, "layout"),
]


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize(("task", "model", "limit", "batch", "target"), CASES,
                         ids=[case[0] for case in CASES])
def test_rescore_gives_the_run_s_metrics_exactly(task, model, limit, batch, target, run_dirs):
    run = evaluate(task, model, limit=limit, batch_size=batch, save_predictions=True,
                   progress=False, **run_dirs)
    folder = run.out_dir / "predictions"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["target"] == target and (folder / target).exists()
    committed = [json.loads(line) for line in (folder / "committed.jsonl").read_text()
                 .splitlines()]
    ids = [i for entry in committed for i in entry["ids"]]
    assert len(ids) == len(set(ids)) == run.n_samples

    again = rescore(run.out_dir, progress=False, leaderboard_dir=run_dirs["leaderboard_dir"])
    assert again.out_dir.parent == run.out_dir.parent and again.out_dir != run.out_dir
    assert again.metadata["model_kind"] == "predictions"
    assert again.n_samples == run.n_samples
    assert again.comparability_key == run.comparability_key
    assert set(again.metrics) == set(run.metrics)
    differ = {k: (run.metrics[k], again.metrics[k]) for k in run.metrics
              if not same(run.metrics[k], again.metrics[k])}
    assert not differ


def test_rescore_with_other_parameters_moves_the_numbers(run_dirs):
    run = evaluate("digits", "logreg", limit=60, batch_size=32, save_predictions=True,
                   progress=False, **run_dirs)
    # top-k accuracy with k = 1 is plain accuracy (metrics.1 is topk_accuracy, k = 2)
    top1 = rescore(run.out_dir, ["metrics.1.params.k=1"], progress=False,
                   leaderboard_dir=run_dirs["leaderboard_dir"])
    assert top1.metrics["top1_accuracy"] == run.metrics["accuracy"]
    assert top1.comparability_key != run.comparability_key
    board = (run_dirs["leaderboard_dir"] / "digits.csv").read_text().splitlines()
    assert len(board) == 3  # header, the run, the re-scoring

    pose = evaluate("synthetic-pose", "oracle-rot3", limit=16, batch_size=8,
                    save_predictions=True, progress=False, **run_dirs)
    assert pose.metrics["rotation_error_median"] == pytest.approx(3.0)  # oracle turned 3 deg
    assert pose.metrics["cm5deg5_accuracy"] == 1.0
    # 5 cm 2 deg (metrics.2 is pose_error): every estimate is 3 deg off, so none passes
    tighter = rescore(pose.out_dir, ["metrics.2.params.max_rotation_deg=2.0"], progress=False,
                      leaderboard=False)
    passed = {k: v for k, v in tighter.metrics.items() if k.startswith("cm5deg")}
    assert passed and all(v == 0.0 for v in passed.values())
    assert tighter.metrics["add_accuracy"] == pose.metrics["add_accuracy"]


def test_rescore_refuses_a_run_without_saved_predictions(run_dirs):
    run = evaluate("digits", "logreg", limit=8, progress=False, **run_dirs)
    with pytest.raises(BenchError, match="no saved predictions|no manifest"):
        rescore(run.out_dir, progress=False)


def test_rescore_reads_its_predictions_without_writing_them(run_dirs):
    run = evaluate("digits", "logreg", limit=20, batch_size=8, save_predictions=True,
                   progress=False, **run_dirs)
    files = sorted(Path(run.out_dir, "predictions").rglob("*"))
    before = {p: p.read_bytes() for p in files if p.is_file()}
    rescore(run.out_dir, progress=False, leaderboard=False)
    assert {p: p.read_bytes() for p in files if p.is_file()} == before
