"""Point-cloud classification metrics: overall accuracy, mean class accuracy, per-class
accuracy and the confusion-matrix figure, as PointNet/PointNet++ report them on ModelNet40.

- overall accuracy: correct shapes / all test shapes (every test shape counts; PointNet's
  evaluate.py drops the last incomplete batch, arbench does not);
- mean class accuracy: the mean over classes *present in the test split* of per-class
  accuracy (recall), PointNet's ``avg class acc``;
- per-class accuracy: correct / support per class, ``null`` for absent classes.

All three reduce one confusion matrix (rows true, columns predicted; a sum state), built by
the functional pieces of ``bench.metrics.classification``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import ContractError
from bench.lazy import lazy_import
from bench.metrics.base import Metric
from bench.metrics.classification import ConfusionMatrix, confusion_matrix, correct
from bench.metrics.classification import mean_class_accuracy as mean_class_accuracy_of
from bench.registry import METRICS

torch = lazy_import("torch")


def overall_accuracy(confusion: torch.Tensor) -> float:
    """Trace over total of a confusion matrix [C,C]; NaN when it is empty."""
    total = confusion.sum()
    return float(confusion.diagonal().sum().double() / total) if total else float("nan")


def per_class_accuracy(confusion: torch.Tensor) -> list[float | None]:
    """Recall of each class (row) of a confusion matrix [C,C]; None for absent classes."""
    support = confusion.sum(dim=1)
    hits = confusion.diagonal()
    return [float(h) / float(s) if s else None for h, s in zip(hits.tolist(), support.tolist(),
                                                               strict=True)]


class _ShapeConfusion(Metric):
    """A confusion-matrix state shared by the point-cloud metrics; labels are checked."""

    @classmethod
    def declare(cls, num_classes: int, class_names: list[str] | None = None
                ) -> dict[str, bool]:
        """Checks the classes; no outputs (subclasses add theirs)."""
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if class_names and len(list(class_names)) != int(num_classes):
            raise ValueError(f"class_names has {len(list(class_names))} entries, "
                             f"num_classes is {int(num_classes)}")
        return {}

    def __init__(self, num_classes: int, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.higher_is_better = self.declare(num_classes, class_names)
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [
            str(i) for i in range(self.num_classes)]
        self.add_state("confusion",
                       torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64), "sum")

    def _update(self, pred: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        labels = batch["label"]
        if pred.shape[1] != self.num_classes:
            raise ContractError(f"logits have {pred.shape[1]} classes, the metric expects "
                                f"{self.num_classes}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ContractError(f"label {int(labels.max())} outside the {self.num_classes} "
                                "classes of the task")
        self.accumulate("confusion", confusion_matrix(pred, labels, self.num_classes))
        return correct(pred, labels)


@METRICS.register("overall_accuracy")
class OverallAccuracy(_ShapeConfusion):
    """Overall accuracy: the fraction of all test shapes classified correctly."""

    @classmethod
    def declare(cls, num_classes: int = 40, class_names: list[str] | None = None
                ) -> dict[str, bool]:
        return super().declare(num_classes, class_names) | {"overall_accuracy": True}

    def __init__(self, num_classes: int = 40, class_names: list[str] | None = None) -> None:
        super().__init__(num_classes, class_names)
        self.per_sample_key = {"overall_accuracy": "correct"}

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hits = self._update(pred, batch)
        return {"correct": hits, "predicted": pred.argmax(dim=1)}

    def compute(self) -> dict[str, float]:
        return {"overall_accuracy": overall_accuracy(self.state("confusion"))}


@METRICS.register("class_accuracy")
class ClassAccuracy(_ShapeConfusion):
    """Mean class accuracy over the classes present in the test split, and per class."""

    @classmethod
    def declare(cls, num_classes: int = 40, class_names: list[str] | None = None
                ) -> dict[str, bool]:
        return super().declare(num_classes, class_names) | {"mean_class_accuracy": True}

    def __init__(self, num_classes: int = 40, class_names: list[str] | None = None) -> None:
        super().__init__(num_classes, class_names)

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self._update(pred, batch)
        return {}

    def compute(self) -> dict[str, float]:
        return {"mean_class_accuracy": mean_class_accuracy_of(self.state("confusion"))}

    def details(self) -> dict[str, Any]:
        values = per_class_accuracy(self.state("confusion"))
        return {"per_class_accuracy": dict(zip(self.class_names, values, strict=True))}


@METRICS.register("shape_confusion")
class ShapeConfusion(_ShapeConfusion):
    """The confusion matrix (rows true, columns predicted) in result.json and as a PNG."""

    def update(self, pred: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self._update(pred, batch)
        return {}

    def compute(self) -> dict[str, float]:
        return {}

    def details(self) -> dict[str, Any]:
        return {"confusion_matrix": self.state("confusion").tolist(),
                "class_names": self.class_names}

    def figures(self, out_dir: Path) -> list[Path]:
        plot = ConfusionMatrix(self.num_classes, self.class_names)
        plot.accumulate("confusion", self.state("confusion").cpu())
        return plot.figures(out_dir)
