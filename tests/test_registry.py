"""Registries: lookups with "did you mean", duplicates, and third-party entry points."""

from __future__ import annotations

import importlib
import sys

import pytest

from bench import registry
from bench.errors import BenchError
from bench.registry import METRICS, Registry, UnknownNameError


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        METRICS.get("acuracy")
    message = str(info.value)
    assert message.startswith("unknown metric 'acuracy'; did you mean 'accuracy'")
    assert "(valid: " in message and "ece" in message


def test_duplicate_names_are_refused() -> None:
    table: Registry = Registry("thing", [], "arbench.tests")
    table.register("a")(object)
    table.register("a")(object)
    with pytest.raises(BenchError, match="thing 'a' is registered twice"):
        table.register("a")(int)


def test_entry_point_plugins_register_on_first_lookup(monkeypatch) -> None:
    table: Registry = Registry("metric", [], "arbench.metrics")

    class EntryPoint:
        def load(self) -> None:
            table.register("plugged", "a plugin metric")(dict)

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()])
    assert table.get("plugged") is dict
    assert list(table.describe()) == [("plugged", "a plugin metric")]


def test_builtin_table_is_complete_and_exact() -> None:
    """The name -> (module, description, family) table equals what a full import registers."""
    stale = []
    for table in registry.REGISTRIES:
        imported = table.builtin_index()
        indexed = {name: table.summary(name) for name in table._index}
        for name in sorted(set(imported) | set(indexed)):
            if imported.get(name) != indexed.get(name):
                stale.append(f"{table.kind} {name!r}: table {indexed.get(name)}, "
                             f"modules {imported.get(name)}")
    assert not stale, ("bench/registry_index.py is stale; regenerate it with "
                       f"`{registry.REGENERATE}`:\n" + "\n".join(stale))
    assert registry.render_index() == registry.INDEX_PATH.read_text(encoding="utf-8"), (
        f"bench/registry_index.py differs from its generated text; run `{registry.REGENERATE}`")


def test_table_answers_without_importing_and_flags_a_stale_entry() -> None:
    table: Registry = Registry("thing", [], "arbench.tests",
                               {"ghost": ("json", "a name json never registers", "")})
    assert "ghost" in table
    assert table.names() == ["ghost"]
    assert list(table.describe()) == [("ghost", "a name json never registers")]
    with pytest.raises(BenchError, match=r"thing 'ghost' is not registered by json: the "
                                         r"built-in table is stale"):
        table.get("ghost")


def test_plugins_are_listed_beside_the_table(monkeypatch) -> None:
    table: Registry = Registry("baseline", [], "arbench.models",
                               {"builtin": ("json", "a built-in baseline", "depth")})

    class Baseline:
        family = "pose"

    class EntryPoint:
        def load(self) -> None:
            table.register("plugged", "a plugin baseline")(Baseline)

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint()])
    assert table.names() == ["builtin", "plugged"]
    assert table.summary("builtin") == ("json", "a built-in baseline", "depth")
    assert table.summary("plugged") == (__name__, "a plugin baseline", "pose")
    with pytest.raises(UnknownNameError, match=r"did you mean 'plugged'"):
        table.get("pluged")


def test_unknown_spec_name_suggests_from_the_table() -> None:
    assert METRICS.unknown_message("voxel_io").startswith(
        "unknown metric 'voxel_io'; did you mean 'voxel_iou'")


def test_a_module_missing_from_the_table_is_reported_as_stale(tmp_path, monkeypatch) -> None:
    package = tmp_path / "stalepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "late.py").write_text(
        "from stalepkg import TABLE\n\n\n@TABLE.register('late')\n"
        "class Late:\n    \"\"\"Added after the table.\"\"\"\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table: Registry = Registry("thing", ["stalepkg"], "arbench.tests", {})
    monkeypatch.setattr(importlib.import_module("stalepkg"), "TABLE", table, raising=False)
    try:
        assert "late" not in table
        assert "stalepkg.late" not in sys.modules
        with pytest.raises(UnknownNameError, match=r"^thing 'late' is registered by stalepkg.late "
                           r"but missing from the built-in table bench/registry_index.py; run "
                           r"`python -m bench.registry --write`"):
            table.get("late")
    finally:
        sys.modules.pop("stalepkg.late", None)
        sys.modules.pop("stalepkg", None)
