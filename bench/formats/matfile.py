"""MATLAB 5 ``.mat`` files (LSUN's layout annotations), written byte-stably."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

HEADER_BYTES = 116
STABLE_HEADER = b"MATLAB 5.0 MAT-file, written by arbench"


def write_mat(path: Path, variables: dict[str, Any]) -> None:
    """Write ``variables`` as a compressed MATLAB 5 file. scipy stamps the time of writing
    into the 116-byte text header; that text is replaced by a fixed one, so the same
    variables always give the same bytes (a data set's fingerprint stays put)."""
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, variables, do_compression=True)
    content = bytearray(buffer.getvalue())
    content[:HEADER_BYTES] = STABLE_HEADER.ljust(HEADER_BYTES, b" ")
    Path(path).write_bytes(bytes(content))
