"""Dataset adapters, one module per on-disk format; each registers in ``ADAPTERS``."""
