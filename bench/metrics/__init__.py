"""Metric modules, one per metric family; each registers its metrics in ``METRICS``."""
