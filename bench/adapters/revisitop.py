"""Revisited Oxford5k / Paris6k (revisitop) layout, and the embedded synthetic-retrieval set.

A data root holds ``jpg/<name>.jpg`` for every database and query image and the ground
truth ``gnd_<dataset>.pkl``: a dict with ``imlist`` (database image names, no extension),
``qimlist`` (query image names) and ``gnd``, one dict per query with ``bbx`` (the query
box x1, y1, x2, y2 in pixels) and ``easy`` / ``hard`` / ``junk`` (database indices).

The pickle is read with a restricted unpickler that builds only plain containers, numbers,
strings, bytes and numpy arrays; anything else (a class, a function call) is refused.
Query images are cropped to their box as revisitop's protocol does (``crop_queries``).
The ``test`` split is the root itself; any other split name reads ``<root>/<split>/`` in the
same layout (the embedded set keeps its disjoint training images there).
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from bench.adapters.base import BenchDataset, DatasetInfo
from bench.errors import DataError
from bench.registry import ADAPTERS

HOW_TO_GET = ("download the images and gnd_<name>.pkl as revisitop's download.py does "
              "(http://cmp.felk.cvut.cz/revisitop/) and pass --set dataset.root=DIR")

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"), ("__builtin__", "complex"),
}


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy arrays and plain containers need."""

    def __init__(self, handle: io.BufferedIOBase, source: Path) -> None:
        super().__init__(handle)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            found = super().find_class(module, name)
            return self._bounded(found) if name == "_reconstruct" else found
        raise DataError(
            f"{self.source} is not plain data: it asks to load {module}.{name}; refusing to "
            "unpickle it (only containers, numbers, strings and numpy arrays are allowed)")


    def _bounded(self, reconstruct: Any) -> Any:
        """numpy's array constructor, refusing a shape over MAX_ARRAY_BYTES before it
        allocates (a ground-truth file can ask for any shape)."""

        def construct(subtype: Any, shape: Any, dtype: Any) -> Any:
            shape = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
            if not all(isinstance(n, int) and n >= 0 for n in shape):
                raise DataError(f"{self.source}: array of shape {shape!r}")
            size = math.prod(shape) * np.dtype(dtype).itemsize
            if size > MAX_ARRAY_BYTES:
                raise DataError(f"{self.source} asks for an array of shape {shape} "
                                f"({size} bytes), over the {MAX_ARRAY_BYTES >> 30} GiB arbench "
                                "unpickles from a ground-truth file")
            return reconstruct(subtype, shape, dtype)

        return construct


MAX_ARRAY_BYTES = 1 << 30  # revisitop's ground truth holds a few thousand small arrays


def load_plain_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only plain containers, numbers, strings and numpy arrays."""
    try:
        with open(path, "rb") as handle:
            return _PlainDataUnpickler(handle, path).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path} is not a readable pickle: {exc}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def read_image(path: Path, max_size: int | None = None) -> np.ndarray:
    """An RGB uint8 image [H, W, 3]; the longer side is scaled to ``max_size`` if larger."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing or corrupt)")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if max_size and max(image.shape[:2]) > max_size:
        scale = max_size / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def split_root(root: Path, split: str) -> Path:
    """``root`` for the test split, ``root/<split>`` for any other split."""
    return root if split == "test" else root / split


def fingerprint_listing(files: list[Path], root: Path, extra: list[Path]) -> str:
    """sha256 over the contents of ``extra`` and the names and sizes of ``files``."""
    digest = hashlib.sha256()
    for path in extra:
        digest.update(path.read_bytes())
    for path in files:
        digest.update(f"{path.relative_to(root)}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def _index_list(value: Any, what: str, n_db: int, source: Path) -> list[int]:
    try:
        items = [int(v) for v in np.asarray(value, dtype=np.int64).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: {what} is not a list of database indices") from exc
    bad = [i for i in items if not 0 <= i < n_db]
    if bad:
        raise DataError(f"{source}: {what} names database index {bad[0]}, but imlist has "
                        f"{n_db} images")
    return items


@ADAPTERS.register("revisitop")
class RevisitopDataset(BenchDataset):
    """Revisited Oxford5k/Paris6k layout: jpg/ and gnd_<name>.pkl (easy/hard/junk, boxes)."""

    def __init__(self, root: Path, split: str = "test", name: str | None = None,
                 crop_queries: bool = True, max_size: int | None = None,
                 normalize: bool = True, ext: str = ".jpg") -> None:
        base = split_root(root, split)
        if not base.is_dir():
            raise DataError(f"revisitop data root {base} does not exist", HOW_TO_GET)
        if name is None:
            found = sorted(base.glob("gnd_*.pkl"))
            if len(found) != 1:
                raise DataError(f"expected one gnd_<name>.pkl in {base}, found "
                                f"{[p.name for p in found] or 'none'}",
                                "pass --set dataset.params.name=roxford5k (or rparis6k)")
            gnd_path = found[0]
        else:
            gnd_path = base / f"gnd_{name}.pkl"
        if not gnd_path.is_file():
            raise DataError(f"missing ground truth {gnd_path}", HOW_TO_GET)
        cfg = load_plain_pickle(gnd_path)
        if not isinstance(cfg, dict) or not {"imlist", "qimlist", "gnd"} <= set(cfg):
            raise DataError(f"{gnd_path} must be a dict with 'imlist', 'qimlist' and 'gnd'")
        self.db_names = [str(n) for n in cfg["imlist"]]
        self.query_names = [str(n) for n in cfg["qimlist"]]
        if len(cfg["gnd"]) != len(self.query_names):
            raise DataError(f"{gnd_path}: {len(cfg['gnd'])} gnd entries for "
                            f"{len(self.query_names)} queries")
        n_db = len(self.db_names)
        self.gnd: list[dict[str, Any]] = []
        for q, entry in enumerate(cfg["gnd"]):
            if not isinstance(entry, dict):
                raise DataError(f"{gnd_path}: gnd[{q}] is not a dict")
            item = {key: _index_list(entry.get(key, []), f"gnd[{q}].{key}", n_db, gnd_path)
                    for key in ("easy", "hard", "junk")}
            box = entry.get("bbx")
            item["bbx"] = None if box is None else [float(v) for v in np.asarray(box).reshape(-1)]
            if item["bbx"] is not None and len(item["bbx"]) != 4:
                raise DataError(f"{gnd_path}: gnd[{q}].bbx must be x1, y1, x2, y2")
            self.gnd.append(item)
        self.image_dir = base / "jpg"
        self.ext = ext
        files = [self.image_dir / f"{n}{ext}" for n in self.query_names + self.db_names]
        for path in files:
            if not path.is_file():
                raise DataError(f"{path} is named in {gnd_path.name} but missing", HOW_TO_GET)
        self.crop_queries, self.max_size = crop_queries, max_size
        self.info = DatasetInfo(
            name=gnd_path.stem.removeprefix("gnd_"), root=base, split=split,
            fingerprint=fingerprint_listing(files, base, [gnd_path]),
            size=len(self.query_names) + n_db,
            meta={"normalize": normalize, "query_names": self.query_names,
                  "db_names": self.db_names, "n_queries": len(self.query_names),
                  "n_database": n_db},
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        n_q = len(self.query_names)
        if index < n_q:
            name, entry = self.query_names[index], self.gnd[index]
            image = read_image(self.image_dir / f"{name}{self.ext}")
            if self.crop_queries and entry["bbx"] is not None:
                image = crop_box(image, entry["bbx"])
            if self.max_size and max(image.shape[:2]) > self.max_size:
                scale = self.max_size / max(image.shape[:2])
                image = cv2.resize(image, (max(1, round(image.shape[1] * scale)),
                                           max(1, round(image.shape[0] * scale))),
                                   interpolation=cv2.INTER_AREA)
            return {"id": f"query/{name}", "image": to_tensor(image), "is_query": True,
                    "index": index, "easy": entry["easy"], "hard": entry["hard"],
                    "junk": entry["junk"]}
        db = index - n_q
        name = self.db_names[db]
        image = read_image(self.image_dir / f"{name}{self.ext}", self.max_size)
        return {"id": f"db/{name}", "image": to_tensor(image), "is_query": False, "index": db,
                "easy": [], "hard": [], "junk": []}


def crop_box(image: np.ndarray, box: list[float]) -> np.ndarray:
    """The box x1, y1, x2, y2 (rounded as PIL's crop does, clipped to the image)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, x2 = min(max(x1, 0), w - 1), min(max(x2, x1 + 1), w)
    y1, y2 = min(max(y1, 0), h - 1), min(max(y2, y1 + 1), h)
    return image[y1:y2, x1:x2]
