"""Metric base: declared states reduced by sum or concatenation (torchmetrics-style).

A metric's ``update`` consumes one batch of predictions and samples and returns the
per-sample values that go to ``samples.jsonl``; ``compute`` turns the reduced state into
the scalar numbers of the leaderboard. Pure functional versions live beside each metric.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar

from bench.lazy import lazy_import

torch = lazy_import("torch")

TensorReduce = Literal["sum", "cat"]
ObjectReduce = Literal["extend", "union"]
Reduce = TensorReduce | ObjectReduce
Shared = TypeVar("Shared")

_BATCH_MEMO: ContextVar[dict[tuple[Hashable, ...], Any] | None] = ContextVar(
    "batch_memo", default=None)


@contextmanager
def shared_per_batch() -> Iterator[None]:
    """Within this block ``per_batch`` computes each quantity of a batch once for all the
    metrics that ask for it (the runner opens one block per batch, around every metric's
    ``update``); the memo is dropped when the block ends."""
    token = _BATCH_MEMO.set({})
    try:
        yield
    finally:
        _BATCH_MEMO.reset(token)


def per_batch(function: Callable[..., Shared], *args: Hashable | torch.Tensor) -> Shared:
    """``function(*args)``, computed once per ``shared_per_batch`` block for the same
    function and arguments (tensors compared by identity, so they must not change in place
    inside the block; other arguments by value). Outside a block it is a plain call."""
    memo = _BATCH_MEMO.get()
    if memo is None:
        return function(*args)
    key = (function, *((id(a), "tensor") if isinstance(a, torch.Tensor) else a for a in args))
    if key not in memo:
        memo[key] = function(*args)
    return memo[key]


def new_figure(*grid: int, **subplots_kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*grid, **kwargs)`` on the file-only Agg backend: (figure, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*grid, **subplots_kwargs)


def save_figure(fig: Any, path: Path, dpi: int = 120) -> Path:
    """Lay out, write ``fig`` to ``path`` (PNG, directories created) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


class Metric:
    """Stateful metric shell. Subclasses call ``add_state`` and fill ``higher_is_better``.

    Everything ``compute``, ``details`` and ``figures`` read lives in declared states, so a
    metric scored in pieces (``merge``) or in shards (``sync``) equals one scored whole.
    ``per_sample_key`` maps an output to the per-sample record whose mean it is (used for
    paired bootstrap confidence intervals in ``arbench compare``).
    """

    version: str = "1"

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._reduce: dict[str, Reduce] = {}
        self._limits: dict[str, int | None] = {}
        self._values: dict[str, Any] = {}
        self.higher_is_better: dict[str, bool] = {}
        self.per_sample_key: dict[str, str] = {}

    def add_state(self, name: str, default: torch.Tensor, reduce: TensorReduce) -> None:
        """Declare a state tensor; ``sum`` states add up, ``cat`` states concatenate on dim 0."""
        self._defaults[name] = default
        self._reduce[name] = reduce
        self._values[name] = default.clone() if reduce == "sum" else []

    def add_object_state(self, name: str, reduce: ObjectReduce, limit: int | None = None
                         ) -> None:
        """Declare a state of picklable Python objects: ``extend`` a list of items in sample
        order (only the first ``limit`` kept, e.g. figure samples), ``union`` a dict (e.g.
        sequence index -> name)."""
        self._reduce[name] = reduce
        self._limits[name] = limit
        self._values[name] = [] if reduce == "extend" else {}

    def state(self, name: str) -> Any:
        """The current (local) value of a state; ``cat`` states come back concatenated,
        object states as their list or dict."""
        value = self._values[name]
        if self._reduce[name] != "cat":
            return value
        return torch.cat(value) if value else self._defaults[name]

    def accumulate(self, name: str, value: Any) -> None:
        """Add to a ``sum`` state, append a tensor to a ``cat`` state (moved to the state's
        device), append one item to an ``extend`` state (while under its limit) or update a
        ``union`` state with a dict."""
        reduce = self._reduce[name]
        if reduce == "sum":
            current = self._values[name]
            if value.dtype != current.dtype:
                value = value.to(dtype=current.dtype)
            if value.device != current.device:
                value = value.to(current.device)
            self._values[name] = current + value
        elif reduce == "cat":
            self._values[name].append(value.detach())
        elif reduce == "extend":
            if self.has_room(name):
                self._values[name].append(value)
        else:
            self._values[name].update(value)

    def has_room(self, name: str) -> bool:
        """True while the ``extend`` state ``name`` holds fewer items than its limit."""
        limit = self._limits[name]
        return limit is None or len(self._values[name]) < limit

    def to(self, device: torch.device | str) -> Metric:
        """Move every tensor state to ``device``."""
        for name, value in self._values.items():
            if self._reduce[name] == "sum":
                self._values[name] = value.to(device)
            elif self._reduce[name] == "cat":
                self._values[name] = [v.to(device) for v in value]
            else:
                continue
            self._defaults[name] = self._defaults[name].to(device)
        return self

    def _combine(self, name: str, parts: list[Any]) -> Any:
        """One state from the local values of several pieces, in sample order: the sum, the
        concatenated chunks, the concatenated items (cut to the limit) or the dict union."""
        reduce = self._reduce[name]
        if reduce == "sum":
            device = self._defaults[name].device
            return sum((p.to(device) for p in parts[1:]), parts[0].to(device))
        if reduce == "cat":
            device = self._defaults[name].device
            return [chunk.to(device) for part in parts for chunk in part]
        if reduce == "extend":
            return [item for part in parts for item in part][: self._limits[name]]
        merged: dict[Any, Any] = {}
        for part in parts:
            merged.update(part)
        return merged

    def merge(self, other: Metric) -> Metric:
        """Fold in the states of ``other`` (same class and parameters, scored on the samples
        that follow this one's), reduced as ``sync`` reduces ranks; ``other`` is unchanged."""
        if type(other) is not type(self) or other._reduce != self._reduce:
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}: "
                             "their states differ")
        for name in self._reduce:
            self._values[name] = self._combine(name, [self._values[name], other._values[name]])
        return self

    def sync(self) -> None:
        """Reduce every state across torch.distributed processes, ranks in order (no-op when
        not running). Ranks hold consecutive shards, so the result equals one process."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for name, reduce in self._reduce.items():
            if reduce == "sum":
                value = self._values[name].clone()
                dist.all_reduce(value)
                self._values[name] = value
                continue
            local = [self.state(name).cpu()] if reduce == "cat" else self._values[name]
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
            if reduce == "cat":
                gathered = [[t for t in part if t.numel()] for part in gathered]
            self._values[name] = self._combine(name, gathered)

    @classmethod
    def declare(cls, **params: Any) -> dict[str, bool]:
        """Check ``params`` as the constructor does (TypeError, ValueError) and return the
        outputs ``compute`` reports, name -> higher is better, before any state exists.

        Built-in metrics override this with their constructor's signature, without torch
        (``arbench validate`` calls it) and their constructor calls it, so each check is
        written once; this default builds the metric."""
        return dict(cls(**params).higher_is_better)

    def update(self, pred: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Consume a batch; return per-sample values, each a tensor [B]."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Scalar results from the reduced state, keyed like ``higher_is_better``."""
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        """JSON-able non-scalar results (curves, per-class tables) for result.json."""
        return {}

    def set_records(self) -> dict[str, dict[str, float | None]]:
        """Per-sample records only the whole set gives, read after ``compute`` (a query's AP
        needs the whole database): sample id -> {key: value}; the runner adds them to those
        samples' records (None for the other samples). None by default."""
        return {}

    def figures(self, out_dir: Path) -> list[Path]:
        """Write this metric's figures (PNG) into ``out_dir``; return their paths."""
        return []

    @classmethod
    def comparison_figures(cls, details: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """Figures putting several models side by side, from each run's ``details()``
        (model name -> details); written by ``arbench demo`` next to the tables."""
        return []
