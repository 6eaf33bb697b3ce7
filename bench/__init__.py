"""arbench: evaluation benchmark suite for deep learning in augmented reality.

``Result`` and ``evaluate`` are imported on first use (PEP 562), so that importing
``bench`` (and starting ``arbench``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.results import Result
    from bench.runner import evaluate

__all__ = ["Result", "evaluate"]

_LAZY = {"Result": "bench.results", "evaluate": "bench.runner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
