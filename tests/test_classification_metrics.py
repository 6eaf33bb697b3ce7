"""Classification metrics against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from bench.metrics.classification import (
    Accuracy,
    ConfusionMatrix,
    ExpectedCalibrationError,
    MeanClassAccuracy,
    TopKAccuracy,
    calibration_bins,
    confusion_matrix,
    expected_calibration_error,
    mean_class_accuracy,
)

# Four samples, three classes. argmax: 0, 1, 2, 2; labels 0, 2, 2, 1.
LOGITS = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
LABELS = torch.tensor([0, 2, 2, 1])


def test_accuracy_and_per_sample_values() -> None:
    metric = Accuracy()
    per_sample = metric.update(LOGITS, {"label": LABELS})
    assert per_sample["correct"].tolist() == [1, 0, 1, 0]
    metric.update(LOGITS[:1], {"label": LABELS[:1]})
    assert metric.compute() == {"accuracy": pytest.approx(3 / 5)}


def test_top2() -> None:
    metric = TopKAccuracy(k=2)
    # Top-2 sets: {0,1}, {1,2}, {2, 0 or 1}, {2,1}: hits for labels 0, 2, 2, 1 -> all four.
    assert metric.update(LOGITS, {"label": LABELS})["top2_correct"].tolist() == [1, 1, 1, 1]
    assert metric.compute() == {"top2_accuracy": 1.0}
    with pytest.raises(ValueError):
        TopKAccuracy(k=0)


def test_confusion_and_mean_class_accuracy() -> None:
    confusion = confusion_matrix(LOGITS, LABELS, 3)
    assert confusion.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    # Per-class recall: 1/1, 0/1, 1/2 -> mean 0.5.
    assert mean_class_accuracy(confusion) == pytest.approx(0.5)
    metric = MeanClassAccuracy(num_classes=4)
    metric.update(LOGITS, {"label": LABELS})
    # Class 3 never occurs in the ground truth, so it does not count.
    assert metric.compute() == {"mean_class_accuracy": pytest.approx(0.5)}


def test_confusion_matrix_figure(tmp_path) -> None:
    metric = ConfusionMatrix(num_classes=3, class_names=["a", "b", "c"])
    metric.update(LOGITS, {"label": LABELS})
    (path,) = metric.figures(tmp_path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert metric.details()["confusion_matrix"][2] == [0, 1, 1]


def test_expected_calibration_error_by_hand() -> None:
    # 2-class logits with known softmax maxima, each well inside its bin (a confidence on a
    # bin edge would change bin with the last bit of the softmax on another CPU).
    p = torch.tensor([0.9, 0.75, 0.55, 0.65])
    logits = torch.stack([torch.log(p), torch.log(1 - p)], dim=1)
    labels = torch.tensor([0, 1, 0, 0])
    counts, conf, hits = calibration_bins(logits, labels, bins=2)
    # Bin (0.5,1] holds all four: mean confidence 0.7125, accuracy 3/4 -> ECE 0.0375.
    assert counts.tolist() == [0, 4]
    assert expected_calibration_error(counts, conf, hits) == pytest.approx(0.0375, abs=1e-6)
    counts, conf, hits = calibration_bins(logits, labels, bins=5)
    # Bins (0.6,0.8]: {0.75 wrong, 0.65 right}; (0.4,0.6]: {0.55 right}; (0.8,1]: {0.9 right}.
    # ECE = (2*|0.7-0.5| + |0.55-1| + |0.9-1|)/4 = (0.4 + 0.45 + 0.1)/4 = 0.2375.
    assert counts.tolist() == [0, 0, 1, 2, 1]
    assert expected_calibration_error(counts, conf, hits) == pytest.approx(0.2375, abs=1e-6)
    metric = ExpectedCalibrationError(bins=5)
    metric.update(logits, {"label": labels})
    assert metric.compute()["ece"] == pytest.approx(0.2375, abs=1e-6)
