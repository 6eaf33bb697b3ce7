"""OFF meshes (ModelNet40), with ModelNet's header quirk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import DataError


def read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh: vertices [V,3] float64 and triangles [F,3] int64 (polygons fanned).

    Accepts ModelNet's quirk of counts glued to the header (``OFF490 518 0``), comments
    (``#``) and blank lines, and ignores per-element colours. Malformed files raise
    DataError naming the file and line.
    """
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read OFF file {path}: {exc}") from exc
    lines = [(number, line.split("#", 1)[0].strip())
             for number, line in enumerate(text.splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines or not lines[0][1].startswith("OFF"):
        where = lines[0][0] if lines else 1
        raise DataError(f"{path}:{where}: not an OFF file (first line must start with 'OFF')")
    header_number, header = lines[0]
    rest = header[3:].strip()
    body = lines[1:]
    if not rest:
        if not body:
            raise DataError(f"{path}:{header_number}: OFF header has no vertex/face counts")
        header_number, rest = body[0]
        body = body[1:]
    try:
        counts = [int(v) for v in rest.split()]
        num_vertices, num_faces = counts[0], counts[1]
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path}:{header_number}: bad OFF counts line {rest!r}, "
                        "expected 'vertices faces edges'") from exc
    if num_vertices < 0 or num_faces < 0:
        raise DataError(f"{path}:{header_number}: negative counts in {rest!r}")
    if len(body) < num_vertices + num_faces:
        raise DataError(f"{path}: truncated: header says {num_vertices} vertices and "
                        f"{num_faces} faces, the file has {len(body)} data lines")
    vertices = _parse_vertices(path, body[:num_vertices])
    triangles = _parse_faces(path, body[num_vertices:num_vertices + num_faces], num_vertices)
    return vertices, triangles


def _parse_vertices(path: Path, lines: list[tuple[int, str]]) -> np.ndarray:
    """Vertex lines -> [V,3]; fast path for plain 'x y z' lines, line-by-line otherwise."""
    try:
        flat = np.array(" ".join(line for _, line in lines).split(), dtype=np.float64)
        vertices = flat.reshape(len(lines), 3) if flat.size == 3 * len(lines) else None
    except ValueError:
        vertices = None
    if vertices is None:
        vertices = np.empty((len(lines), 3), dtype=np.float64)
        for index, (number, line) in enumerate(lines):
            parts = line.split()
            try:
                if len(parts) < 3:
                    raise ValueError("fewer than 3 values")
                vertices[index] = [float(v) for v in parts[:3]]
            except ValueError as exc:
                raise DataError(f"{path}:{number}: bad vertex line {line!r} ({exc})") from exc
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise DataError(f"{path}:{lines[bad][0]}: vertex {bad} has a NaN or infinite coordinate")
    return vertices


def _parse_faces(path: Path, lines: list[tuple[int, str]], num_vertices: int) -> np.ndarray:
    """Face lines 'n i1 ... in [colour]' -> triangles [F,3] (polygons fanned from i1)."""
    try:
        flat = np.array(" ".join(line for _, line in lines).split(), dtype=np.int64)
    except ValueError:
        flat = np.empty(0, dtype=np.int64)
    if lines and flat.size == 4 * len(lines):
        table = flat.reshape(-1, 4)
        if (table[:, 0] == 3).all() and table[:, 1:].min() >= 0 \
                and table[:, 1:].max() < num_vertices:
            return table[:, 1:].copy()
    triangles: list[list[int]] = []
    for number, line in lines:
        parts = line.split()
        try:
            size = int(parts[0])
            polygon = [int(v) for v in parts[1:1 + size]]
        except ValueError as exc:
            raise DataError(f"{path}:{number}: bad face line {line!r} ({exc})") from exc
        if size < 3 or len(polygon) != size:
            raise DataError(f"{path}:{number}: bad face line {line!r} "
                            "(expected 'n i1 ... in' with n >= 3)")
        if min(polygon) < 0 or max(polygon) >= num_vertices:
            raise DataError(f"{path}:{number}: face index out of range 0..{num_vertices - 1}")
        triangles.extend([polygon[0], polygon[i], polygon[i + 1]] for i in range(1, size - 1))
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
