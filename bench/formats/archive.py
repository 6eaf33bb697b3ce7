"""Reading members of a zip archive with a bound on what they decompress to."""

from __future__ import annotations

import zipfile

from bench.errors import ContractError

MAX_MEMBER_BYTES = 256 << 20  # one prediction file (a mesh, a depth map, a mask)


def read_member(archive: zipfile.ZipFile, name: str, where: str,
                max_bytes: int = MAX_MEMBER_BYTES,
                error: type[Exception] = ContractError) -> bytes:
    """The bytes of member ``name``, refused with ``error`` (naming ``where``) when it
    declares or decompresses to more than ``max_bytes``: memory stays bounded whatever the
    archive claims (a zip bomb stops at ``max_bytes`` + 1 bytes read)."""
    info = archive.getinfo(name)
    if info.file_size > max_bytes:
        raise error(f"{where}: member decompresses to {info.file_size} bytes, over the "
                    f"{max_bytes >> 20} MiB arbench reads from one prediction file")
    with archive.open(info) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{where}: member decompresses to over {max_bytes >> 20} MiB, more than its "
                    "header says")
    return data
