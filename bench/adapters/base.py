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


def leaves_root(entry: str | Path) -> bool:
    """Whether a path read from a data set's own files (a file list, an index) leads
    outside its root once ``..`` is applied lexically (symlinks the user placed inside the
    root are followed as they are)."""
    normal = os.path.normpath(str(entry).lstrip("/"))
    return normal == ".." or normal.startswith("../")


def fingerprint_files(paths: list[Path], root: Path) -> str:
    """sha256 over the relative names and contents of ``paths`` (16 hex digits).

    Every path must lie inside ``root`` (lexically, after ``..``): an entry of a data set's
    own index that leads outside it is a DataError, never read."""
    digest = hashlib.sha256()
    for path in paths:
        if leaves_root(os.path.relpath(path, root)):
            raise DataError(f"{path} lies outside the data root {root}",
                            "entries of a data set's file lists are paths inside its root")
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


BUILD_MARK = ".arbench-build"


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """The MANIFEST.json of ``root`` as a dict, or None when absent or unreadable."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _build_is_complete(root: Path, manifest: dict[str, Any], version: str) -> bool:
    """Every file the manifest lists is there with its recorded size, from this builder."""
    sizes = manifest.get("sizes")
    if manifest.get("builder_version") != version or not isinstance(sizes, dict):
        return False
    for name, size in sizes.items():
        try:
            if (root / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _builder_version(builder: Any) -> str:
    """The version an embedded builder declares (``builder.version``, default "1")."""
    return str(getattr(builder, "version", "1"))


def embedded_root(name: str) -> Path:
    """Where the embedded set ``name`` lives: its own folder under the data root."""
    return data_root() / name


def embedded_is_built(name: str, root: Path | None = None) -> bool:
    """Whether ``root`` (default: ``embedded_root(name)``) holds a complete build of the
    embedded set ``name`` by its current builder (nothing is built or changed)."""
    from bench.registry import EMBEDDED

    root = embedded_root(name) if root is None else root
    manifest = _read_manifest(root)
    return manifest is not None and manifest.get("name") == name and _build_is_complete(
        root, manifest, _builder_version(EMBEDDED.get(name)))


def ensure_embedded(name: str, root: Path | None = None) -> Path:
    """Build the embedded data set ``name`` into ``root`` (default: ``embedded_root(name)``)
    unless a complete build of it is there; return the root.

    ``root`` is arbench's own: it is built only where it is absent or holds an arbench build
    of ``name`` (its MANIFEST.json names it). A partial or stale build of its own (a listed
    file missing or of another size, another builder version) is rebuilt; any other folder is
    left untouched and a DataError says what was found. The build goes to a marked temporary
    sibling renamed into place when finished, under a file lock, so neither a concurrent run
    nor a run after a killed build ever sees a half-built set.
    """
    from bench.registry import EMBEDDED

    root = embedded_root(name) if root is None else root
    if embedded_is_built(name, root):
        return root
    builder = EMBEDDED.get(name)
    version = _builder_version(builder)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        manifest = _read_manifest(root)
        if root.exists():
            if manifest is None or manifest.get("name") != name:
                found = "no MANIFEST.json" if manifest is None else (
                    f"a MANIFEST.json naming {manifest.get('name')!r}")
                raise DataError(
                    f"{root} exists and is not arbench's build of the embedded set {name!r} "
                    f"({found}); arbench builds only into its own folders and leaves this one "
                    "untouched",
                    "move that folder elsewhere, or point $ARBENCH_DATA at another data root")
            if _build_is_complete(root, manifest, version):
                return root
        _remove_dead_builds(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        (tmp / BUILD_MARK).write_text(name)
        try:
            builder(tmp)
            _write_manifest(tmp, name, version)
            if root.exists():
                old = tmp.with_name(tmp.name + "-old")
                root.rename(old)
                (old / BUILD_MARK).write_text(name)
                tmp.rename(root)
                shutil.rmtree(old)
            else:
                tmp.rename(root)
            (root / BUILD_MARK).unlink()
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return root


def _write_manifest(folder: Path, name: str, version: str) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != BUILD_MARK)
    manifest = {
        "name": name,
        "builder": "arbench",
        "builder_version": version,
        "fingerprint": fingerprint_files(files, folder),
        "files": {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in files},
        "sizes": {str(p.relative_to(folder)): p.stat().st_size for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def _remove_dead_builds(root: Path) -> None:
    """Remove temporary build folders of ``root`` left by killed builds (only those that
    carry arbench's build mark; called under the build lock)."""
    for leftover in root.parent.glob(f".{root.name}-*"):
        if leftover.is_dir() and (leftover / BUILD_MARK).is_file():
            shutil.rmtree(leftover)
