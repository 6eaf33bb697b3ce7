"""Wavefront OBJ meshes: parse, read, write."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import DataError


def parse_obj(text: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V,3] and triangles [F,3] of Wavefront OBJ text (polygons fan-split).

    Face corners may be ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``, 1-based or negative.
    """
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("v "):
            parts = line.split()
            try:
                vertices.append([float(parts[1]), float(parts[2]), float(parts[3])])
            except (ValueError, IndexError) as exc:
                raise DataError(f"{where}:{number}: bad vertex line {line.strip()!r}") from exc
        elif line.startswith("f "):
            try:
                corner = [int(p.split("/")[0]) for p in line.split()[1:]]
            except ValueError as exc:
                raise DataError(f"{where}:{number}: bad face line {line.strip()!r}") from exc
            corner = [c - 1 if c > 0 else len(vertices) + c for c in corner]
            faces += [[corner[0], corner[i], corner[i + 1]] for i in range(1, len(corner) - 1)]
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise DataError(f"{where}: a face indexes vertex {int(f.max()) + 1} but the file has "
                        f"{len(v)} vertices")
    if not np.isfinite(v).all():
        raise DataError(f"{where}: NaN or infinite vertex coordinates")
    return v, f


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Wavefront OBJ mesh file (DataError when missing or malformed)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read mesh {path}: {exc}") from exc
    return parse_obj(text, str(path))


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write vertices [V,3] and triangles [F,3] as a Wavefront OBJ file."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
