"""`arbench perf`: speed cases, one module per family, registered in ``PERF_CASES``."""
