"""arbench: evaluation benchmark suite for deep learning in augmented reality."""

from bench.results import Result
from bench.runner import evaluate

__all__ = ["Result", "evaluate"]
