"""Metric base: declared tensor states reduced by sum or concatenation (torchmetrics-style).

A metric's ``update`` consumes one batch of predictions and samples and returns the
per-sample values that go to ``samples.jsonl``; ``compute`` turns the reduced state into
the scalar numbers of the leaderboard. Pure functional versions live beside each metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist

Reduce = Literal["sum", "cat"]


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

    ``per_sample_key`` maps an output to the per-sample record whose mean it is (used for
    paired bootstrap confidence intervals in ``arbench compare``).
    """

    version: str = "1"

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._reduce: dict[str, Reduce] = {}
        self._values: dict[str, Any] = {}
        self.higher_is_better: dict[str, bool] = {}
        self.per_sample_key: dict[str, str] = {}

    def add_state(self, name: str, default: torch.Tensor, reduce: Reduce) -> None:
        """Declare a state tensor; ``sum`` states add up, ``cat`` states concatenate on dim 0."""
        self._defaults[name] = default
        self._reduce[name] = reduce
        self._values[name] = default.clone() if reduce == "sum" else []

    def state(self, name: str) -> torch.Tensor:
        """The current (local) value of a state; ``cat`` states come back concatenated."""
        value = self._values[name]
        if self._reduce[name] == "sum":
            return value
        return torch.cat(value) if value else self._defaults[name]

    def accumulate(self, name: str, value: torch.Tensor) -> None:
        """Add to a ``sum`` state or append to a ``cat`` state (moved to the state's device)."""
        if self._reduce[name] == "sum":
            current = self._values[name]
            self._values[name] = current + value.to(current.device, current.dtype)
        else:
            self._values[name].append(value.detach())

    def to(self, device: torch.device | str) -> Metric:
        """Move every state to ``device``."""
        for name, value in self._values.items():
            if self._reduce[name] == "sum":
                self._values[name] = value.to(device)
            else:
                self._values[name] = [v.to(device) for v in value]
            self._defaults[name] = self._defaults[name].to(device)
        return self

    def sync(self) -> None:
        """Reduce every state across torch.distributed processes (no-op when not running)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for name, reduce in self._reduce.items():
            if reduce == "sum":
                value = self._values[name].clone()
                dist.all_reduce(value)
                self._values[name] = value
            else:
                gathered: list[Any] = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, self.state(name).cpu())
                device = self._defaults[name].device
                self._values[name] = [g.to(device) for g in gathered if g.numel()]

    def update(self, pred: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Consume a batch; return per-sample values, each a tensor [B]."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Scalar results from the reduced state, keyed like ``higher_is_better``."""
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        """JSON-able non-scalar results (curves, per-class tables) for result.json."""
        return {}

    def figures(self, out_dir: Path) -> list[Path]:
        """Write this metric's figures (PNG) into ``out_dir``; return their paths."""
        return []

    @classmethod
    def comparison_figures(cls, details: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """Figures putting several models side by side, from each run's ``details()``
        (model name -> details); written by ``arbench demo`` next to the tables."""
        return []
