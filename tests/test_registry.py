"""Registries: lookups with "did you mean", duplicates, and third-party entry points."""

from __future__ import annotations

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
