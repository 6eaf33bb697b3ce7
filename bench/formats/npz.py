"""NumPy ``.npz`` prediction files, read member by member with a bound on memory.

``np.load`` allocates whatever shape an ``.npy`` member's header declares and then
inflates the member into it, so a few kilobytes of deflated zeros can ask for tens of
gigabytes. Here each member's header is read first: object arrays are refused and the
array must fit the memory budget (half the machine's memory) before anything is
allocated; a member shorter than its header says is an error too.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from pathlib import Path
from types import TracebackType

import numpy as np

from bench.errors import ContractError

NPY_SUFFIX = ".npy"


def memory_budget() -> int:
    """Bytes one array of a predictions file may take: half the machine's memory (8 GiB
    where the platform cannot say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


class NpzFile:
    """The arrays of an ``.npz`` (``files``, ``key in npz``, ``npz[key]``), each read when
    asked for; every failure raises ``error`` naming ``where`` and the array."""

    def __init__(self, source: Path | io.BytesIO, where: str,
                 error: type[Exception] = ContractError, max_bytes: int | None = None) -> None:
        self.where, self.error = where, error
        self.max_bytes = memory_budget() if max_bytes is None else max_bytes
        try:
            self._archive = zipfile.ZipFile(source)
        except (OSError, zipfile.BadZipFile) as exc:
            raise error(f"{where}: not a readable .npz ({exc})") from exc
        self._members = {name.removesuffix(NPY_SUFFIX): name
                         for name in self._archive.namelist() if name.endswith(NPY_SUFFIX)}
        self.files = list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._members:
            raise KeyError(key)
        member = self._members[key]
        try:
            with self._archive.open(member) as handle:
                self._check_header(key, handle)
            with self._archive.open(member) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)
        except (ValueError, EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
            raise self.error(f"{self.where}: cannot read array {key!r}: {exc}") from exc

    def _check_header(self, key: str, handle: io.BufferedIOBase) -> None:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"npy format version {version[0]}.{version[1]} is not read here; "
                             "save with numpy's np.savez / np.savez_compressed")
        if dtype.hasobject:
            raise ValueError("it holds Python objects; save plain numbers or strings")
        size = math.prod(shape) * dtype.itemsize
        if size > self.max_bytes:
            raise ValueError(f"its header declares {shape} {dtype} ({size >> 20} MiB), over the "
                             f"{self.max_bytes >> 20} MiB one array may take here")

    def read_all(self) -> dict[str, np.ndarray]:
        """Every array, by name."""
        return {key: self[key] for key in self.files}

    def close(self) -> None:
        """Close the archive."""
        self._archive.close()

    def __enter__(self) -> NpzFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
