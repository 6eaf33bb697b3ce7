"""Retrieval: every sample is one image, a query or a database image; prediction is a
global descriptor [D] per image (L2-normalised here unless ``dataset.params.normalize``
is false). The metrics concatenate the descriptors and search in ``compute``.

Sample: ``id`` (``query/<name>`` or ``db/<name>``), ``image`` [3,H,W] in [0,1] (sizes may
differ: the batch then holds a list), ``is_query``, ``index`` (position among the queries
or the database) and, for queries, ``easy`` / ``hard`` / ``junk`` database indices.

Predictions files (``docs/retrieval.md``):

- ``X.npy`` [N, D] float descriptors with ``X.txt`` beside it, one sample id per line in
  the same order (or ``.npz`` with arrays ``ids`` and ``descriptors``);
- ``X.csv`` with header ``query,ranking``: per query its name and the database names,
  best first, separated by spaces. Unlisted database images follow in database order.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import ContractError, ModelError
from bench.families.base import Batch, Family, Predictor, TensorTable, check_tensor
from bench.families.saving import PredictionWriter, write_bytes_atomic
from bench.formats.npz import NpzFile
from bench.registry import FAMILIES


class DescriptorFiles(PredictionWriter):
    """``descriptors.npy`` [N,D] float32 (the model's descriptors before normalisation) and
    ``descriptors.txt`` (one sample id per line), both rewritten whole after each batch."""

    target_name = "descriptors.npy"

    def __init__(self, folder: Path, dataset: Any) -> None:
        super().__init__(folder, dataset)
        self.rows: list[np.ndarray] = []
        self.ids: list[str] = []

    def write(self, batch: Batch, raw: Any, pred: Any) -> None:
        self.rows.append(raw.detach().float().cpu().numpy())
        self.ids += [str(i) for i in batch["id"]]
        self._flush()

    def _flush(self) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.concatenate(self.rows) if self.rows else np.zeros((0, 0), np.float32))
        write_bytes_atomic(self.target, buffer.getvalue())
        write_bytes_atomic(self.target.with_suffix(".txt"),
                           "".join(f"{i}\n" for i in self.ids).encode("utf-8"))

    def state(self) -> int:
        return len(self.ids)

    def restore(self, state: Any) -> None:
        count = int(state or 0)
        if count and self.target.is_file():
            self.rows = [np.load(self.target, allow_pickle=False)[:count]]
            names = self.target.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
            self.ids = names[:count]


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` [N, D] divided by their L2 norm (zero rows stay zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


class RankingTable:
    """Turns ranked lists into descriptors that reproduce them under inner product.

    Database image i gets the one-hot vector e_i; a query gets (L - r) / L at the r-th
    (0-based) of its L listed images and 0 elsewhere, so its ranking is the list followed
    by the unlisted images in database order. Dimension: the database size.
    """

    def __init__(self, rankings: dict[str, list[int]], n_db: int, source: Path) -> None:
        self.rankings, self.n_db, self.source = rankings, n_db, source

    def __call__(self, batch: Batch) -> torch.Tensor:
        out = torch.zeros(len(batch["id"]), self.n_db, dtype=torch.float32)
        for row, (sample_id, is_query, index) in enumerate(
                zip(batch["id"], batch["is_query"].tolist(), batch["index"].tolist(),
                    strict=True)):
            if not is_query:
                out[row, index] = 1.0
                continue
            name = sample_id.split("/", 1)[1]
            if name not in self.rankings:
                raise ModelError(f"{self.source} has no ranking for query {name!r}")
            ranked = self.rankings[name]
            if ranked:
                out[row, ranked] = torch.arange(len(ranked), 0, -1, dtype=torch.float32) / len(
                    ranked)
        return out.to(batch["index"].device)


def read_rankings(path: Path, info: Any) -> dict[str, list[int]]:
    """A ``query,ranking`` CSV -> database indices per query name (names checked)."""
    db_index = {name: i for i, name in enumerate(info.meta["db_names"])}
    queries = set(info.meta["query_names"])
    rankings: dict[str, list[int]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["query", "ranking"]:
            raise ContractError(f"{path}:1: header must be 'query,ranking', got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise ContractError(f"{path}:{line}: expected 2 fields, got {len(row)}")
            query, names = row[0], row[1].split()
            if query not in queries:
                raise ContractError(f"{path}:{line}: {query!r} is not a query of the data set")
            unknown = [n for n in names if n not in db_index]
            if unknown:
                raise ContractError(f"{path}:{line}: {unknown[0]!r} is not a database image")
            ranked = [db_index[n] for n in names]
            if len(set(ranked)) != len(ranked):
                raise ContractError(f"{path}:{line}: a database image is listed twice")
            rankings[query] = ranked
    return rankings


class DescriptorFamily(Family):
    """Shared by retrieval and localization: images in, one global descriptor [D] out."""

    def __init__(self) -> None:
        self.dim: int | None = None
        self.first_id: str | None = None

    def module_predictor(self, module: Any) -> Predictor:
        """A network called as ``module(images [B,3,H,W]) -> descriptors [B,D]`` (images of
        different sizes are fed one at a time)."""

        def predict(batch: Batch) -> torch.Tensor:
            images = batch["image"]
            if isinstance(images, torch.Tensor):
                return module(images)
            return torch.cat([module(image[None]) for image in images])

        return predict

    def check_prediction(self, pred: Any, batch: Batch, info: Any) -> torch.Tensor:
        """Descriptors float [B, D], finite, one D for every image; L2-normalised."""
        desc = check_tensor("descriptors", pred, (len(batch["id"]), None))
        if self.dim is None:
            self.dim, self.first_id = desc.shape[1], batch["id"][0]
        elif desc.shape[1] != self.dim:
            raise ContractError(
                f"descriptor of {batch['id'][0]!r} has dimension {desc.shape[1]}, but "
                f"{self.first_id!r} had {self.dim}; queries and database must match")
        desc = desc.float()
        return l2_normalize(desc) if info.meta.get("normalize", True) else desc

    def load_predictions(self, path: Path, dataset: Any) -> Predictor:
        """``X.npy`` + ``X.txt`` ids, ``.npz`` (ids, descriptors) or ``query,ranking`` CSV."""
        if path.suffix == ".csv":
            return RankingTable(read_rankings(path, dataset.info),
                                len(dataset.info.meta["db_names"]), path)
        if path.suffix == ".npz":
            with NpzFile(path, str(path)) as data:
                if "ids" not in data or "descriptors" not in data:
                    raise ContractError(f"{path} must hold arrays 'ids' and 'descriptors'")
                ids = [str(i) for i in data["ids"]]
                rows = np.asarray(data["descriptors"])
        elif path.suffix == ".npy":
            names = path.with_suffix(".txt")
            if not names.is_file():
                raise ContractError(f"{path} needs {names} (one sample id per line, same order)")
            rows = np.load(path, allow_pickle=False)
            ids = [line.strip() for line in names.read_text(encoding="utf-8").splitlines()
                   if line.strip()]
        else:
            raise ContractError(f"{path}: {self.name} predictions must be .npy, .npz or .csv")
        if rows.ndim != 2 or rows.shape[0] != len(ids):
            raise ContractError(
                f"{path}: descriptors shape {rows.shape} does not match {len(ids)} ids")
        return TensorTable(ids, torch.from_numpy(rows.astype(np.float32)), path)

    def prediction_writer(self, folder: Path, dataset: Any) -> DescriptorFiles:
        """``descriptors.npy`` + ``descriptors.txt``, rewritten after each batch."""
        return DescriptorFiles(folder, dataset)


@FAMILIES.register("retrieval")
class RetrievalFamily(DescriptorFamily):
    """Image retrieval: query/database images (easy/hard/junk) -> global descriptor [D]."""

    name = "retrieval"
    sample_keys = ("id", "image", "is_query", "index", "easy", "hard", "junk")
