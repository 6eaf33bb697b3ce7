"""The family seam: how samples batch, what a model is fed, what a prediction must be."""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from bench.errors import ContractError, ModelError

Batch = dict[str, Any]


@runtime_checkable
class Predictor(Protocol):
    """Anything that maps a collated batch (on the run's device) to the family's prediction."""

    def __call__(self, batch: Batch) -> Any: ...


def default_collate(samples: list[dict[str, Any]]) -> Batch:
    """Stack tensors of equal shape, make numbers tensors, keep everything else as lists."""
    batch: Batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            try:  # torch checks the shapes; they are compared here only when it refuses
                batch[key] = torch.stack(values)
            except (RuntimeError, TypeError):
                if _stackable(values):
                    raise
                batch[key] = values
        elif isinstance(first, bool | int | float) and not isinstance(first, str):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def _stackable(values: list[Any]) -> bool:
    """Whether ``values`` are tensors of one type and one shape."""
    return len(set(map(type, values))) == 1 and len(set(map(_SHAPE, values))) == 1


_SHAPE = operator.attrgetter("shape")
# Items of a list that ``move_batch`` need not walk into.
_PLAIN_ITEMS = frozenset({str, int, float, bool, type(None)})


def move_batch(batch: Batch, device: torch.device, non_blocking: bool = False) -> Batch:
    """Move every tensor of a batch (and tensors inside lists) to ``device``."""

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=non_blocking)
        if isinstance(value, list):  # a list of ids or numbers is kept as it is, not walked
            if set(map(type, value)) <= _PLAIN_ITEMS:
                return value
            return [move(v) for v in value]
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    return {key: move(value) for key, value in batch.items()}


def check_tensor(
    name: str,
    value: Any,
    shape: tuple[int | None, ...],
    *,
    floating: bool = True,
    finite: bool = True,
) -> torch.Tensor:
    """Check a prediction tensor's shape (None = any size), dtype kind and finiteness."""
    if not isinstance(value, torch.Tensor):
        raise ContractError(
            f"prediction {name!r} must be a torch.Tensor of shape {_shape_text(shape)}, "
            f"got {type(value).__name__}"
        )
    if value.ndim != len(shape) or any(
        want is not None and want != got for want, got in zip(shape, value.shape, strict=False)
    ):
        raise ContractError(
            f"prediction {name!r} has shape {tuple(value.shape)}, expected {_shape_text(shape)}"
        )
    if floating and not value.is_floating_point():
        raise ContractError(f"prediction {name!r} has dtype {value.dtype}, expected a float dtype")
    if finite and value.is_floating_point() and not torch.isfinite(value).all():
        bad = int((~torch.isfinite(value)).sum())
        raise ContractError(f"prediction {name!r} has {bad} NaN or infinite values")
    return value


def batch_device(batch: Batch) -> torch.device:
    """The device of the first tensor in a batch (``cpu`` when it holds none)."""
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


class PredictionTable:
    """Rows of a predictions file served by sample id (subclasses build the predictions)."""

    def __init__(self, ids: list[str], source: Path) -> None:
        self.index: dict[str, int] = {}
        for row, sample_id in enumerate(ids):
            if sample_id in self.index:
                raise ModelError(f"{source} has two predictions for sample {sample_id!r} "
                                 f"(rows {self.index[sample_id] + 1} and {row + 1})",
                                 "give each sample id once")
            self.index[sample_id] = row
        self.source = source

    def rows_for(self, batch: Batch) -> list[int]:
        """Row numbers of the batch's samples; a sample without a row is a ModelError."""
        missing = [i for i in batch["id"] if i not in self.index]
        if missing:
            raise ModelError(
                f"{self.source} has no prediction for sample {missing[0]!r} "
                f"({len(missing)} of this batch missing)"
            )
        return [self.index[i] for i in batch["id"]]


class TensorTable(PredictionTable):
    """One tensor row per sample (logits, descriptors ...) served on the batch's device."""

    def __init__(self, ids: list[str], values: torch.Tensor, source: Path) -> None:
        super().__init__(ids, source)
        self.values = values

    def __call__(self, batch: Batch) -> torch.Tensor:
        return self.values[self.rows_for(batch)].to(batch_device(batch))


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


class Family:
    """Base family. Subclasses set ``name`` and ``sample_keys`` and override the hooks."""

    name: str = ""
    sample_keys: tuple[str, ...] = ("id",)

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Samples -> batch."""
        return default_collate(samples)

    def check_sample(self, sample: dict[str, Any]) -> None:
        """Raise ContractError when an adapter's sample lacks a key of the contract."""
        missing = [key for key in self.sample_keys if key not in sample]
        if missing:
            raise ContractError(
                f"{self.name} samples need keys {list(self.sample_keys)}; missing {missing}"
            )

    def module_predictor(self, module: Callable[..., Any]) -> Predictor:
        """Wrap a plain network (TorchScript, torch.export, state_dict) as a Predictor."""
        raise NotImplementedError(f"{self.name} has no plain-module input convention")

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> Any:
        """Validate (and normalise) a batch of predictions; raise ContractError when wrong."""
        raise NotImplementedError

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """A Predictor that serves predictions from a file in the family's format."""
        raise NotImplementedError(f"{self.name} has no predictions-file format yet")

    def prediction_writer(self, folder: Path, dataset: Any) -> Any:
        """A ``bench.families.saving.PredictionWriter`` writing this family's predictions
        format into ``folder`` batch by batch (what ``load_predictions`` reads back)."""
        raise ContractError(f"the {self.name} family cannot save predictions yet")
