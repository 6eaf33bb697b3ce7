"""Geo-tagged place recognition: ``database/`` and ``queries/`` image folders and a CSV of
positions, the layout a user produces from Pittsburgh250k / Tokyo 24/7 style data.

``<root>/positions.csv`` has the header ``image,east,north`` (extra columns are ignored):
``image`` is the path relative to the root (``database/000123.jpg`` or
``queries/q042.jpg``), ``east`` / ``north`` the position in metres (UTM or any metric
local frame). Every listed image must exist; the images under ``database/`` form the
database and those under ``queries/`` the queries, each in the CSV's order. The ``test``
split is the root itself; any other split reads ``<root>/<split>/`` in the same layout.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch

from bench.adapters.base import BenchDataset, DatasetInfo
from bench.adapters.revisitop import fingerprint_listing, read_image, split_root, to_tensor
from bench.errors import DataError
from bench.registry import ADAPTERS

POSITIONS = "positions.csv"
HOW_TO_GET = ("write database/ and queries/ folders and positions.csv (image,east,north in "
              "metres) as docs/retrieval.md describes, then pass --set dataset.root=DIR")


def read_positions(path: Path) -> list[tuple[str, float, float]]:
    """Rows (image, east, north) of a positions CSV; malformed rows raise DataError."""
    if not path.is_file():
        raise DataError(f"missing {path}", HOW_TO_GET)
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if not {"image", "east", "north"} <= set(header):
            raise DataError(f"{path}:1: header must contain image,east,north (got {header})")
        for line, row in enumerate(reader, start=2):
            try:
                east, north = float(row["east"]), float(row["north"])
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}:{line}: east/north must be numbers ({exc})") from exc
            if not (math.isfinite(east) and math.isfinite(north)):
                raise DataError(f"{path}:{line}: east/north must be finite")
            rows.append((str(row["image"]), east, north))
    return rows


@ADAPTERS.register("geo-retrieval")
class GeoRetrievalDataset(BenchDataset):
    """Place recognition: database/ and queries/ folders plus positions.csv (east, north m)."""

    def __init__(self, root: Path, split: str = "test", max_size: int | None = None,
                 normalize: bool = True) -> None:
        base = split_root(root, split)
        if not base.is_dir():
            raise DataError(f"geo-retrieval data root {base} does not exist", HOW_TO_GET)
        csv_path = base / POSITIONS
        rows = read_positions(csv_path)
        self.items: dict[str, list[tuple[str, float, float]]] = {"queries": [], "database": []}
        for image, east, north in rows:
            folder = Path(image).parts[0] if Path(image).parts else ""
            if folder not in self.items:
                raise DataError(f"{csv_path}: image {image!r} is neither under database/ "
                                "nor under queries/")
            if not (base / image).is_file():
                raise DataError(f"{base / image} is listed in {csv_path.name} but missing",
                                HOW_TO_GET)
            self.items[folder].append((image, east, north))
        for folder, items in self.items.items():
            if not items:
                raise DataError(f"{csv_path} lists no image under {folder}/", HOW_TO_GET)
        self.base, self.max_size = base, max_size
        files = [base / image for image, _, _ in rows]
        self.query_names = [Path(i).relative_to("queries").as_posix()
                            for i, _, _ in self.items["queries"]]
        self.db_names = [Path(i).relative_to("database").as_posix()
                         for i, _, _ in self.items["database"]]
        self.info = DatasetInfo(
            name=base.name, root=base, split=split,
            fingerprint=fingerprint_listing(files, base, [csv_path]),
            size=len(rows),
            meta={"normalize": normalize, "query_names": self.query_names,
                  "db_names": self.db_names, "n_queries": len(self.query_names),
                  "n_database": len(self.db_names)},
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        n_q = len(self.items["queries"])
        is_query = index < n_q
        local = index if is_query else index - n_q
        image, east, north = self.items["queries" if is_query else "database"][local]
        names = self.query_names if is_query else self.db_names
        return {
            "id": f"{'query' if is_query else 'db'}/{names[local]}",
            "image": to_tensor(read_image(self.base / image, self.max_size)),
            "is_query": is_query,
            "index": local,
            "position": torch.tensor([east, north], dtype=torch.float64),
        }
