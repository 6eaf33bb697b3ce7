"""Resume (issue 15, part 3): a run killed half way continues from its committed batches
and ends with the result of an uninterrupted run, each sample once in samples.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.families.saving import read_committed
from bench.runner import evaluate

REPO = Path(__file__).resolve().parents[1]
LIMIT = 240
RUN = ["digits", "--model", "logreg", "--limit", str(LIMIT), "--batch-size", "1",
       "--save-predictions", "--no-leaderboard"]


def arbench(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sample_ids(run_dir: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (run_dir / "samples.jsonl").read_text()
            .splitlines()]


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path):
    out = tmp_path / "results"
    process = arbench("run", *RUN, "--out", str(out))
    models = out / "digits" / "logreg"
    committed = 0
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        logs = list(models.glob("*/predictions/committed.jsonl"))
        committed = len(logs[0].read_text().splitlines()) if logs else 0
        if committed >= LIMIT // 2:
            process.kill()  # SIGKILL: no cleanup runs
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -9, f"the run ended before the kill:\n{process.stdout.read()}"
    (run_dir,) = models.iterdir()
    assert not (run_dir / "result.json").exists()
    done, _ = read_committed(run_dir / "predictions")
    assert LIMIT // 2 <= len(done) < LIMIT

    assert main(["run", *RUN, "--out", str(out), "--resume"]) == 0
    assert [p.name for p in models.iterdir()] == [run_dir.name]  # the same run folder
    result = json.loads((run_dir / "result.json").read_text())
    ids = sample_ids(run_dir)
    assert len(ids) == len(set(ids)) == LIMIT

    whole = evaluate("digits", "logreg", limit=LIMIT, batch_size=1, leaderboard=False,
                     progress=False, out_dir=tmp_path / "whole")
    assert result["metrics"] == whole.metrics
    assert result["comparability_key"] == whole.comparability_key
    assert ids == sample_ids(whole.out_dir)
    per_sample = (run_dir / "samples.jsonl").read_text()
    assert per_sample == (whole.out_dir / "samples.jsonl").read_text()
    done, _ = read_committed(run_dir / "predictions")
    assert sorted(done) == sorted(ids)


def _unfinished(run_dirs: dict[str, Path], **options) -> Path:
    """A saved run cut short: the commit log keeps its first two batches only."""
    run = evaluate("digits", "logreg", limit=24, batch_size=8, save_predictions=True,
                   progress=False, **run_dirs, **options)
    (run.out_dir / "result.json").unlink()
    log = run.out_dir / "predictions" / "committed.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + lines[2][:10])  # a half-written third line
    return run.out_dir


def test_resume_continues_after_the_last_whole_batch(run_dirs):
    run_dir = _unfinished(run_dirs)
    result = evaluate("digits", "logreg", limit=24, batch_size=8, resume=True,
                      progress=False, **run_dirs)
    assert result.out_dir == run_dir
    assert len(sample_ids(run_dir)) == 24
    whole = evaluate("digits", "logreg", limit=24, batch_size=8, progress=False, **run_dirs)
    assert result.metrics == whole.metrics
    rows = (run_dir / "predictions" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 24 and len(set(rows)) == len(rows)


@pytest.mark.parametrize(("change", "reason"), [
    ({"overrides": ["metrics.3.params.bins=10"]}, "spec_hash"),
    ({"model": "lenet5"}, None),
    ({"batch_size": 4}, "batch_size"),
])
def test_resume_refuses_a_mismatch_with_the_reason(run_dirs, change, reason):
    run_dir = _unfinished(run_dirs)
    options = {"limit": 24, "batch_size": 8, **change}
    model = options.pop("model", "logreg")
    if reason is None:  # another model: resume RUN_DIR explicitly, its fingerprint differs
        with pytest.raises(BenchError, match="model_"):
            evaluate("digits", model, resume=run_dir, progress=False, **run_dirs, **options)
        return
    with pytest.raises(BenchError, match=f"cannot resume .*{reason}"):
        evaluate("digits", model, resume=True, progress=False, **run_dirs, **options)


def test_resume_of_a_finished_run_is_refused(run_dirs):
    run = evaluate("digits", "logreg", limit=8, save_predictions=True, progress=False,
                   **run_dirs)
    with pytest.raises(BenchError, match="finished"):
        evaluate("digits", "logreg", limit=8, resume=run.out_dir, progress=False, **run_dirs)
