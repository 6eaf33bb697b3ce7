"""Image-based localization: query and database images with positions (east, north in
metres); prediction is a global descriptor [D] per image, as in retrieval (same predictor
conventions and predictions files, ``bench.families.retrieval``). A query is localized at
the position of its retrieved database images.

Sample: ``id``, ``image`` [3,H,W] in [0,1], ``is_query``, ``index``, ``position`` [2]
float64 (east, north, metres).
"""

from __future__ import annotations

from bench.families.retrieval import DescriptorFamily
from bench.registry import FAMILIES


@FAMILIES.register("localization")
class LocalizationFamily(DescriptorFamily):
    """Place recognition: geo-tagged query/database images -> global descriptor [D]."""

    name = "localization"
    sample_keys = ("id", "image", "is_query", "index", "position")
