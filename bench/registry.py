"""Named registries for adapters, metrics, families, models and embedded data sets.

Built-in entries register themselves with decorators in their own modules. A registry
knows, without importing anything, which module registers each built-in name (and its
one-line description) from the generated table in ``bench/registry_index.py``, so
``get(name)`` imports one module and ``names()``/``describe()`` import none. Regenerate
the table after adding, renaming or re-describing an entry::

    python -m bench.registry --write

(``tests/test_registry.py`` imports every module and fails while the table is stale.)
Third-party packages add entries through the entry-point groups ``arbench.adapters``,
``arbench.metrics``, ``arbench.families``, ``arbench.models``, ``arbench.embedded`` and
``arbench.perf`` (each entry point names a module to import); they load on the first
lookup of a name the table does not know. A module missing from the table is imported
only to explain an unknown name: the error then says the table is stale.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from bench.errors import BenchError
from bench.registry_index import INDEX

T = TypeVar("T")

INDEX_PATH = Path(__file__).with_name("registry_index.py")
REGENERATE = "python -m bench.registry --write"


class UnknownNameError(BenchError):
    """A name that is not in a registry; the message suggests the closest valid names."""


class IndexEntry(NamedTuple):
    """What a registry knows about a built-in name before importing its module."""

    module: str
    description: str
    family: str = ""


class Registry(Generic[T]):
    """A name -> object map filled by the ``register`` decorator and loaded lazily.

    ``index`` maps each built-in name to ``(module, description, family)``; a name it
    lacks is looked up in the entry points; only an unknown name's error message imports
    every module of ``packages`` (for its "did you mean" list).
    """

    def __init__(self, kind: str, packages: list[str], entry_point_group: str,
                 index: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.kind = kind
        self._packages = packages
        self._group = entry_point_group
        self._index = {name: IndexEntry(*entry) for name, entry in (index or {}).items()}
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._modules: dict[str, str] = {}
        self._plugins_loaded = False
        self._all_loaded = False

    def register(self, name: str, description: str | None = None,
                 module: str | None = None) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (description: docstring line;
        module: the module registering it, default ``obj.__module__``)."""

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise BenchError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            doc = description or (getattr(obj, "__doc__", None) or "").strip()
            self._descriptions[name] = doc.splitlines()[0] if doc else ""
            self._modules[name] = module or getattr(obj, "__module__", "")
            return obj

        return decorate

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for entry in entry_points(group=self._group):
                entry.load()

    def load_all(self) -> None:
        """Import every module of the registry's packages and every plugin."""
        if self._all_loaded:
            return
        self._all_loaded = True
        for package_name in self._packages:
            package = importlib.import_module(package_name)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{package_name}.{module.name}")
        self._load_plugins()

    def _find(self, name: str) -> bool:
        """Register ``name`` by importing its one module (or the plugins); whether it exists.

        A name neither in the table nor in a plugin is unknown without importing the
        built-in modules: ``--model my.pt`` asks ``in MODELS`` and must stay cheap."""
        if name in self._entries:
            return True
        if name in self._index:
            module = self._index[name].module
            importlib.import_module(module)
            if name not in self._entries:
                raise BenchError(f"{self.kind} {name!r} is not registered by {module}: the "
                                 f"built-in table is stale", f"run `{REGENERATE}`")
            return True
        self._load_plugins()
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises with "did you mean"."""
        if not self._find(name):
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        """One line naming the unknown entry, the closest matches and the valid names.

        Imports every built-in module (the last resort): a name registered by a module the
        table lacks is reported as a stale table, with the command that regenerates it."""
        self.load_all()
        if name in self._entries and name not in self._index:
            return (f"{self.kind} {name!r} is registered by {self._modules[name]} but missing "
                    f"from the built-in table bench/registry_index.py; run `{REGENERATE}`")
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        valid = ", ".join(known) or "none"
        return f"unknown {self.kind} {name!r}{hint} (valid: {valid})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._index or self._find(name))

    def names(self) -> list[str]:
        """All names (built-in ones from the table, plus plugins), sorted."""
        self._load_plugins()
        return sorted(set(self._index) | set(self._entries))

    def summary(self, name: str) -> IndexEntry:
        """Module, one-line description and family (when the entry has one) of ``name``;
        a built-in name is answered from the table without importing its module."""
        if name in self._index:
            return self._index[name]
        self.get(name)
        return self._loaded_summary(name)

    def _loaded_summary(self, name: str) -> IndexEntry:
        family = getattr(self._entries[name], "family", "")
        return IndexEntry(self._modules[name], self._descriptions[name],
                          family if isinstance(family, str) else "")

    def describe(self) -> Iterator[tuple[str, str]]:
        """(name, one-line description) for every entry, sorted by name."""
        for name in self.names():
            yield name, self.summary(name).description

    def builtin_index(self) -> dict[str, IndexEntry]:
        """The table of built-in names computed by importing every module (slow)."""
        self.load_all()
        prefixes = tuple(f"{package}." for package in self._packages)
        return {name: self._loaded_summary(name) for name in sorted(self._entries)
                if self._modules[name].startswith(prefixes)}


ADAPTERS: Registry = Registry("adapter", ["bench.adapters"], "arbench.adapters",
                              INDEX["arbench.adapters"])
METRICS: Registry = Registry("metric", ["bench.metrics"], "arbench.metrics",
                             INDEX["arbench.metrics"])
FAMILIES: Registry = Registry("family", ["bench.families"], "arbench.families",
                              INDEX["arbench.families"])
MODELS: Registry = Registry("baseline", ["baselines"], "arbench.models", INDEX["arbench.models"])
EMBEDDED: Registry = Registry("embedded data set", ["bench.synth"], "arbench.embedded",
                              INDEX["arbench.embedded"])
PERF_CASES: Registry = Registry("perf case", ["bench.perf"], "arbench.perf",
                                INDEX["arbench.perf"])
REGISTRIES = (ADAPTERS, METRICS, FAMILIES, MODELS, EMBEDDED, PERF_CASES)


def render_index() -> str:
    """The source of ``bench/registry_index.py`` for the modules as they are now."""
    lines = [
        f'"""Generated by `{REGENERATE}`: registry group -> built-in name ->',
        '(module, one-line description, family). Do not edit by hand."""',
        "",
        "# ruff: noqa: E501",
        "",
        "INDEX: dict[str, dict[str, tuple[str, str, str]]] = {",
    ]
    for registry in REGISTRIES:
        lines.append(f"    {registry._group!r}: {{")
        for name, entry in registry.builtin_index().items():
            lines.append(f"        {name!r}: {tuple(entry)!r},")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.registry [--write]``: print or rewrite the built-in table."""
    parser = argparse.ArgumentParser(prog="python -m bench.registry", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {INDEX_PATH}")
    args = parser.parse_args(argv)
    text = render_index()
    if args.write:
        INDEX_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {INDEX_PATH}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    from bench import registry  # the module the built-in modules register into, not __main__

    sys.exit(registry.main())
