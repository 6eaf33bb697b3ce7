"""The import layers of ``bench``: every import goes to a lower layer (docs/ARCHITECTURE.md).

Each module of ``bench/`` is parsed with ``ast``; imports at any depth (inside functions
too) count. Modules of one package (``bench.adapters.bop`` and ``bench.adapters.base``)
may import each other; different parts on the same layer (adapters, metrics, synth) may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

# part of bench -> layer; a higher number sits higher and may import any lower layer.
LAYERS: dict[str, int] = {
    "errors": 0,
    "registry_index": 0,
    "lazy": 0,
    "registry": 1,
    "spec": 2,
    "geometry": 3,
    "formats": 3,
    "families": 4,
    "adapters": 5,
    "metrics": 5,
    "synth": 5,
    "models": 6,
    "results": 7,
    "runner": 8,
    "tables": 8,
    "perf": 9,
    "campaign": 9,
    "site": 9,
    "demo": 10,
    "cli": 11,
    "__main__": 12,
    "__init__": 12,
}
# the bottom parts may import only these parts of bench
BOTTOM_ALLOWED = {"geometry": {"errors"}, "formats": {"errors"}}


def module_name(path: Path) -> str:
    """Dotted module name of a file: ``bench/adapters/bop.py`` -> ``bench.adapters.bop``."""
    parts = list(path.relative_to(BENCH.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str:
    """The part of bench a dotted module belongs to: ``bench.adapters.bop`` -> ``adapters``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def bench_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported bench module) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "bench" or (target.startswith("bench.") and target.count(".") == 1):
                # ``from bench import x`` / ``from bench.synth import hand_model`` name modules
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "bench" or name.startswith("bench.")]


def layer_violations() -> list[str]:
    """One line per import that goes up, sideways between parts of a layer, or out of the bottom."""
    violations = []
    for path in sorted(BENCH.rglob("*.py")):
        source = module_name(path)
        source_part = part_of(source)
        for line, target in bench_imports(path):
            target_part = part_of(target)
            if target_part not in LAYERS:
                target_part = target.split(".")[1] if "." in target else "__init__"
            if source_part == target_part:
                continue
            where = f"{path.relative_to(BENCH.parent)}:{line}: {source} -> {target}"
            if source_part in BOTTOM_ALLOWED and target_part not in BOTTOM_ALLOWED[source_part]:
                violations.append(f"{where} (the bottom layer imports only bench.errors)")
            elif LAYERS[target_part] >= LAYERS[source_part]:
                kind = "sideways" if LAYERS[target_part] == LAYERS[source_part] else "upward"
                violations.append(f"{where} ({kind}: {source_part} -> {target_part})")
    return violations


def test_every_part_has_a_layer():
    parts = {part_of(module_name(path)) for path in BENCH.rglob("*.py")}
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"


def test_imports_go_down_only():
    violations = layer_violations()
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_baselines_import_below_the_cli():
    baselines = BENCH.parent / "baselines"
    above = {part for part, layer in LAYERS.items() if layer >= LAYERS["cli"]}
    found = [f"{path.relative_to(BENCH.parent)}:{line}: {target}"
             for path in sorted(baselines.rglob("*.py"))
             for line, target in bench_imports(path) if part_of(target) in above]
    assert not found, "baselines import the cli:\n" + "\n".join(found)


def test_the_walk_sees_imports_inside_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "bench"
    (package / "metrics").mkdir(parents=True)
    (package / "adapters").mkdir()
    (package / "geometry").mkdir()
    (package / "metrics" / "shape.py").write_text(
        "def f():\n    from bench.adapters.r2n2 import read_obj\n")
    (package / "adapters" / "r2n2.py").write_text("from bench.geometry import mesh\n")
    (package / "geometry" / "mesh.py").write_text("from ..formats.obj import read_obj\n")
    monkeypatch.setattr(__import__(__name__), "BENCH", package)
    assert layer_violations() == [
        "bench/geometry/mesh.py:1: bench.geometry.mesh -> bench.formats.obj"
        " (the bottom layer imports only bench.errors)",
        "bench/metrics/shape.py:2: bench.metrics.shape -> bench.adapters.r2n2"
        " (sideways: metrics -> adapters)",
    ]
