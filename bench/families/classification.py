"""Classification: sample ``image`` [C,H,W] in [0,1] and ``label``; prediction logits [C].

Predictions file: ``.npz`` with ``ids`` [N] (str) and ``logits`` [N,C] (float), or a CSV
with a header ``id,logit_0,...,logit_{C-1}``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError
from bench.families.base import Batch, Family, Predictor, TensorTable, check_tensor
from bench.families.saving import AppendedLines
from bench.formats.npz import NpzFile
from bench.registry import FAMILIES


class LogitsCsv(AppendedLines):
    """Appends ``id,logit_0,...`` rows (floats written exactly) batch by batch."""

    target_name = "predictions.csv"

    def header(self, pred: torch.Tensor) -> str:
        return ",".join(["id", *(f"logit_{c}" for c in range(pred.shape[1]))])

    def lines(self, batch: Batch, raw: Any, pred: torch.Tensor) -> list[str]:
        rows = pred.detach().cpu().tolist()
        return [",".join([_csv_id(str(sample_id)), *map(repr, row)])
                for sample_id, row in zip(batch["id"], rows, strict=True)]


def _csv_id(sample_id: str) -> str:
    if any(char in sample_id for char in ',"\n\r'):
        return '"' + sample_id.replace('"', '""') + '"'
    return sample_id


@FAMILIES.register("classification")
class ClassificationFamily(Family):
    """Image classification: image [C,H,W] in [0,1], label -> logits [num_classes]."""

    name = "classification"
    sample_keys = ("id", "image", "label")

    def module_predictor(self, module: Any) -> Predictor:
        """A network called as ``module(images [B,C,H,W]) -> logits [B,C]``."""
        return lambda batch: module(batch["image"])

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> torch.Tensor:
        """Logits must be float [B, num_classes] and finite."""
        num_classes = info.meta.get("num_classes")
        logits = check_tensor("logits", pred, (len(batch["id"]), num_classes))
        return logits.float()

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """Read ``.npz`` (ids, logits) or CSV (id, logit_0 ...) predictions."""
        if path.suffix == ".npz":
            with NpzFile(path, str(path)) as data:
                if "ids" not in data or "logits" not in data:
                    raise ContractError(f"{path} must hold arrays 'ids' and 'logits'")
                ids = [str(i) for i in data["ids"]]
                logits = torch.from_numpy(np.asarray(data["logits"], dtype=np.float32))
        elif path.suffix == ".csv":
            ids, rows = [], []
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if not header or header[0] != "id":
                    raise ContractError(f"{path}:1: header must start with 'id,logit_0,...'")
                for line_no, row in enumerate(reader, start=2):
                    if len(row) != len(header):
                        raise ContractError(
                            f"{path}:{line_no}: {len(row)} fields, header has {len(header)}")
                    try:
                        rows.append([float(v) for v in row[1:]])
                    except ValueError as exc:
                        raise ContractError(f"{path}:{line_no}: {exc}") from exc
                    ids.append(row[0])
            logits = torch.tensor(rows, dtype=torch.float32)
        else:
            raise ContractError(f"{path}: classification predictions must be .npz or .csv")
        if logits.ndim != 2 or logits.shape[0] != len(ids):
            raise ContractError(
                f"{path}: logits shape {tuple(logits.shape)} does not match {len(ids)} ids")
        return TensorTable(ids, logits, path)

    def prediction_writer(self, folder: Path, dataset: Any) -> LogitsCsv:
        """``predictions.csv`` (``id,logit_0,...``), grown batch by batch."""
        return LogitsCsv(folder, dataset)
