"""Baseline predictors, their training code and small trained weights (in ``weights/``)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
