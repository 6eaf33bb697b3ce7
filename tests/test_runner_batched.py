"""The runner's batched work: per-batch quantities shared by metrics, samples.jsonl written
a batch at a time byte for byte as one json.dumps per record, and the `runner` perf case."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench.errors import BenchError
from bench.metrics import classification
from bench.metrics.base import per_batch, shared_per_batch
from bench.results import SampleWriter, json_lines
from bench.runner import evaluate


def record_by_record(ids: list, values: dict) -> str:
    """What the writer wrote before it was batched: one json.dumps per record."""
    lines = []
    for index, sample_id in enumerate(ids):
        record = {"id": sample_id}
        record.update({key: column[index] for key, column in values.items()})
        lines.append(json.dumps(record, allow_nan=True) + "\n")
    return "".join(lines)


def test_json_lines_is_byte_identical_to_one_dump_per_record():
    ids = ["test/00000", 'quote " and \\ slash', "accent é 数字\n", "100%"]
    values = {
        "correct": [1.0, 0.0, -0.0, 0.30000000000000004],
        "confidence": [float("nan"), float("inf"), float("-inf"), 1e-300],
        "predicted": [3, 0, -7, 2**70],
        "flag": [True, False, True, False],
        "mixed": [1, 2.5, None, True],
        "corners": [[1.5, 2.0], [], [[0, 1], [2, 3]], [float("nan")]],
        "name": ["a", "b%s", "c\t", "d"],
        'key "with" %s': [None, None, None, None],
    }
    assert json_lines(ids, values) == record_by_record(ids, values)


def test_a_metric_value_named_id_replaces_the_id_as_before():
    values = {"error": [0.5, 1.0], "id": ["x", "y"]}
    assert json_lines(["a", "b"], values) == record_by_record(["a", "b"], values)


def test_sample_writer_writes_each_batch_as_the_records_it_holds(tmp_path):
    path = tmp_path / "samples.jsonl"
    writer = SampleWriter(path)
    writer.write(["a", "b"], {"correct": [1.0, 0.0], "predicted": [4, 2]})
    writer.write(["c"], {"correct": [float("nan")], "predicted": [1]})
    writer.close()
    assert path.read_text(encoding="utf-8") == (
        '{"id": "a", "correct": 1.0, "predicted": 4}\n'
        '{"id": "b", "correct": 0.0, "predicted": 2}\n'
        '{"id": "c", "correct": NaN, "predicted": 1}\n')


def test_sample_writer_refuses_a_column_of_the_wrong_length(tmp_path):
    writer = SampleWriter(tmp_path / "samples.jsonl")
    with pytest.raises(BenchError, match="'correct': 1 for a batch of 2 samples"):
        writer.write(["a", "b"], {"correct": [1.0]})
    writer.close()


def test_per_batch_computes_once_inside_a_block_and_every_time_outside():
    calls = []

    def doubled(tensor: torch.Tensor, factor: int) -> torch.Tensor:
        calls.append(factor)
        return tensor * factor

    logits = torch.tensor([1.0, 2.0])
    other = torch.tensor([1.0, 2.0])  # equal values, another tensor: its own entry
    with shared_per_batch():
        first = per_batch(doubled, logits, 2)
        assert per_batch(doubled, logits, 2) is first
        per_batch(doubled, logits, 3)
        per_batch(doubled, other, 2)
    assert calls == [2, 3, 2]
    with shared_per_batch():  # a new block (the next batch) starts empty
        per_batch(doubled, logits, 2)
    per_batch(doubled, logits, 2)
    per_batch(doubled, logits, 2)
    assert calls == [2, 3, 2, 2, 2, 2]


def test_classification_metrics_of_a_batch_share_argmax_and_softmax(monkeypatch):
    calls = {"argmax": 0, "softmax": 0}
    argmax, softmax = classification.predicted_class, classification.softmax_confidence

    def counted_argmax(logits):
        calls["argmax"] += 1
        return argmax(logits)

    def counted_softmax(logits):
        calls["softmax"] += 1
        return softmax(logits)

    monkeypatch.setattr(classification, "predicted_class", counted_argmax)
    monkeypatch.setattr(classification, "softmax_confidence", counted_softmax)
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]])
    batch = {"id": ["a", "b", "c"], "label": torch.tensor([0, 2, 2])}
    metrics = [classification.Accuracy(), classification.TopKAccuracy(k=2),
               classification.MeanClassAccuracy(num_classes=3),
               classification.ExpectedCalibrationError(bins=15),
               classification.ConfusionMatrix(num_classes=3)]
    with shared_per_batch():
        records = {key: value.tolist() for metric in metrics
                   for key, value in metric.update(logits, batch).items()}
    assert calls == {"argmax": 1, "softmax": 1}
    # argmax [0, 1, 0] against labels [0, 2, 2]; the top 2 of each row hold its label
    assert records["correct"] == [1.0, 0.0, 0.0]
    assert records["predicted"] == [0, 1, 0]
    assert records["top2_correct"] == [1.0, 1.0, 1.0]
    expected_confidence = [1 / (1 + math.exp(-1) + math.exp(-2)),
                           1 / (1 + math.exp(-3) + math.exp(-2)),
                           1 / (1 + math.exp(-1) + math.exp(-0.5))]
    assert records["confidence"] == pytest.approx(expected_confidence, rel=1e-6)
    values = {key: v for metric in metrics for key, v in metric.compute().items()}
    assert values["accuracy"] == pytest.approx(1 / 3)
    assert values["top2_accuracy"] == 1.0
    assert values["mean_class_accuracy"] == pytest.approx(0.5)  # classes 0 and 2: 1 and 0
    assert metrics[-1].details()["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [1, 1, 0]]


def test_runner_samples_jsonl_reads_back_as_one_dump_per_record(tmp_path):
    result = evaluate("digits", "logreg", out_dir=tmp_path, leaderboard=False, progress=False,
                      limit=300, batch_size=64)
    lines = (result.out_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300
    assert all(line == json.dumps(json.loads(line), allow_nan=True) for line in lines)
    first = json.loads(lines[0])
    assert list(first) == ["id", "correct", "predicted", "top2_correct", "confidence"]
    accuracy = sum(json.loads(line)["correct"] for line in lines) / 300
    assert accuracy == pytest.approx(result.metrics["accuracy"])


def test_runner_perf_case_times_both_models_against_both_references():
    from bench.perf.runner import case

    rows = case(rounds=1, samples=600)
    assert [(row["model"], row["loop"].split(" (")[0].split(":")[0]) for row in rows] == [
        (model, loop) for model in ("logreg", "lecture-cnn") for loop in (
            "bare PyTorch", "hand-written", "arbench evaluate() loop",
            "arbench evaluate() end to end")]
    assert all(row["same metrics"] == "yes" for row in rows if row["loop"].endswith("loop"))
    assert all(float(row["vs bare"]) > 0 for row in rows)
