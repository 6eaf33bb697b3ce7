"""What every adapter shares: the data root, DatasetInfo, fingerprints, embedded builds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from bench.errors import DataError

CHECKOUT_DATA = Path(__file__).resolve().parents[2] / "datasets"
MANIFEST = "MANIFEST.json"


def data_root() -> Path:
    """``$ARBENCH_DATA``, else ``datasets/`` of a source checkout, else ``~/.cache/arbench``."""
    if os.environ.get("ARBENCH_DATA"):
        return Path(os.environ["ARBENCH_DATA"]).expanduser()
    if (CHECKOUT_DATA / "README.md").is_file():
        return CHECKOUT_DATA
    return Path.home() / ".cache" / "arbench" / "datasets"


def resolve_root(root: str | None, default_name: str) -> Path:
    """A spec's ``dataset.root``: absolute as given, relative under the data root."""
    path = Path(root or default_name).expanduser()
    return path if path.is_absolute() else data_root() / path


@dataclass
class DatasetInfo:
    """What a run records about its data: name, where, which split, a content fingerprint."""

    name: str
    root: Path
    split: str
    fingerprint: str
    size: int
    meta: dict[str, Any] = field(default_factory=dict)


class BenchDataset(torch.utils.data.Dataset):
    """A map-style dataset of sample dicts (each with a string ``id``) and its DatasetInfo."""

    info: DatasetInfo

    def __len__(self) -> int:
        return self.info.size


def fingerprint_files(paths: list[Path], root: Path) -> str:
    """sha256 over the relative names and contents of ``paths`` (16 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def require_files(paths: list[Path], what: str, how: str) -> None:
    """Raise a DataError naming the first missing file and how to get the data."""
    for path in paths:
        if not path.is_file():
            raise DataError(f"{what}: missing {path}", how)


def ensure_embedded(name: str, root: Path) -> Path:
    """Build the embedded data set ``name`` into ``root`` unless a complete copy is there.

    The build goes to a temporary sibling directory renamed into place when finished, under
    a file lock, so concurrent runs never see a half-built set.
    """
    from bench.registry import EMBEDDED

    if (root / MANIFEST).is_file():
        return root
    builder = EMBEDDED.get(name)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if (root / MANIFEST).is_file():
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            builder(tmp)
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            manifest = {
                "name": name,
                "fingerprint": fingerprint_files(files, tmp),
                "files": {
                    str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in files
                },
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return root
