"""The binvox voxel format (3D-R2N2's ShapeNetVox32): read and write."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import DataError


def read_binvox(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a binvox file -> (occupancy [X,Y,Z] bool, translate [3], scale).

    binvox stores run-length pairs (value, count) in x-z-y order (y fastest); voxel (i,j,k)
    is centred at ``translate + (ijk + 0.5) / dim * scale``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read binvox file {path}: {exc}") from exc
    header: dict[str, list[str]] = {}
    offset = 0
    lines = 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0 or lines > 8:
            raise DataError(f"{path}: binvox header has no 'data' line")
        line = data[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        lines += 1
        if lines == 1:
            if not line.startswith("#binvox"):
                raise DataError(f"{path}: not a binvox file (first line {line[:20]!r})")
            continue
        if line == "data":
            break
        key, *values = line.split()
        header[key] = values
    try:
        dims = [int(v) for v in header["dim"]]
        translate = np.array([float(v) for v in header.get("translate", ["0", "0", "0"])])
        scale = float(header.get("scale", ["1"])[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: bad binvox header {header} ({exc!r})") from exc
    if len(dims) != 3 or min(dims) < 1 or len(translate) != 3:
        raise DataError(f"{path}: bad binvox header: dim {header.get('dim')}, "
                        f"translate {header.get('translate')}")
    raw = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if len(raw) % 2:
        raw = raw[:-1]
    values, counts = raw[0::2], raw[1::2]
    total = int(counts.sum(dtype=np.int64))
    expected = dims[0] * dims[1] * dims[2]
    if total != expected:
        raise DataError(f"{path}: binvox run lengths cover {total} voxels, the header's dim "
                        f"{dims} needs {expected}; the file is truncated or corrupt")
    flat = np.repeat(values > 0, counts)
    grid = flat.reshape(dims[0], dims[2], dims[1]).transpose(0, 2, 1)
    return np.ascontiguousarray(grid), translate, scale


def write_binvox(path: Path, grid: np.ndarray, translate: np.ndarray, scale: float) -> None:
    """Write an occupancy grid [X,Y,Z] as binvox (inverse of ``read_binvox``)."""
    grid = np.asarray(grid, dtype=bool)
    flat = grid.transpose(0, 2, 1).reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(flat)]]))
    pairs = []
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        value = int(flat[start])
        while length > 0:
            run = min(length, 255)
            pairs += [value, run]
            length -= run
    header = (f"#binvox 1\ndim {grid.shape[0]} {grid.shape[1]} {grid.shape[2]}\n"
              f"translate {translate[0]:.6f} {translate[1]:.6f} {translate[2]:.6f}\n"
              f"scale {scale:.6f}\ndata\n")
    path.write_bytes(header.encode("ascii") + bytes(pairs))
