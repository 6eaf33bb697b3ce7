"""One thread pool per process, one thread per core, for numpy work that releases the GIL
(the renderer's shading blocks, the depth metric's per-image medians)."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor


@functools.cache
def core_pool() -> ThreadPoolExecutor:
    """The process's pool, started on first use."""
    return ThreadPoolExecutor(max(1, len(os.sched_getaffinity(0))), thread_name_prefix="arbench")


# A forked child (a process pool of a data build, DataLoader workers) has none of the parent's
# threads: it must start its own pool, or its first map waits forever.
os.register_at_fork(after_in_child=core_pool.cache_clear)
