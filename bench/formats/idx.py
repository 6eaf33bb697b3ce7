"""The IDX format of MNIST (optionally gzipped)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from bench.errors import DataError

MAX_IDX_BYTES = 8 << 30  # one IDX file (MNIST's largest is 47 MB)
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into an array; malformed files raise DataError.

    The header is read first and at most the size it declares (plus one byte, to see a
    longer file) after it, so memory stays bounded by the smaller of the file and its
    header, whatever a (possibly gzipped) file claims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
                raise DataError(f"{path} is not an IDX file (bad magic number {head.hex()})")
            ndim = head[3]
            if ndim != expected_ndim:
                raise DataError(f"{path} has {ndim} dimensions, expected {expected_ndim}")
            dims = handle.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path} is truncated inside its header")
            shape = struct.unpack(f">{ndim}I", dims)
            dtype = np.dtype(IDX_DTYPES[head[2]])
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            data = handle.read(min(expected, MAX_IDX_BYTES) + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if expected > MAX_IDX_BYTES:
        raise DataError(f"{path}: its header declares shape {shape}, {expected} bytes, over "
                        f"the {MAX_IDX_BYTES >> 30} GiB arbench reads from one IDX file")
    if len(data) != expected:
        raise DataError(
            f"{path} holds {'more than ' if len(data) > expected else ''}"
            f"{min(len(data), expected)} bytes of data, its header says {expected} "
            f"(shape {shape}); the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)
