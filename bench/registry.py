"""Named registries for adapters, metrics, families, models and embedded data sets.

Built-in entries register themselves with decorators in their own modules; the modules
of a registry's package are imported on the first lookup, so adding an adapter means
adding one module. Third-party packages add entries through the entry-point groups
``arbench.adapters``, ``arbench.metrics``, ``arbench.families``, ``arbench.models`` and
``arbench.embedded`` (each entry point names a module to import).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


class UnknownNameError(BenchError):
    """A name that is not in a registry; the message suggests the closest valid names."""


class Registry(Generic[T]):
    """A name -> object map filled by the ``register`` decorator and loaded lazily."""

    def __init__(self, kind: str, packages: list[str], entry_point_group: str) -> None:
        self.kind = kind
        self._packages = packages
        self._group = entry_point_group
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (description: docstring line)."""

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise BenchError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            doc = description or (getattr(obj, "__doc__", None) or "").strip()
            self._descriptions[name] = doc.splitlines()[0] if doc else ""
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{package_name}.{module.name}")
        for entry in entry_points(group=self._group):
            entry.load()

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises with "did you mean"."""
        self._load()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        """One line naming the unknown entry, the closest matches and the valid names."""
        self._load()
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        valid = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (valid: {valid})"

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._entries)

    def describe(self) -> Iterator[tuple[str, str]]:
        """(name, one-line description) for every entry, sorted by name."""
        self._load()
        for name in sorted(self._entries):
            yield name, self._descriptions[name]


ADAPTERS: Registry = Registry("adapter", ["bench.adapters"], "arbench.adapters")
METRICS: Registry = Registry("metric", ["bench.metrics"], "arbench.metrics")
FAMILIES: Registry = Registry("family", ["bench.families"], "arbench.families")
MODELS: Registry = Registry("baseline", ["baselines"], "arbench.models")
EMBEDDED: Registry = Registry("embedded data set", ["bench.synth"], "arbench.embedded")
PERF_CASES: Registry = Registry("perf case", ["bench.perf"], "arbench.perf")
