"""Deterministic offline generators of the embedded data sets (registered in ``EMBEDDED``)."""
