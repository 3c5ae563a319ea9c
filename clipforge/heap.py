"""Giving the C heap's free memory back to the operating system between batches.

glibc keeps freed memory in its heap for reuse. A model worker allocates large buffers of
changing sizes (attention over a batch of 30 s chunks, a batch of speaker windows), and the
freed ones stay resident among the live ones: an ASR actor's RSS settled ~300 MB above what it
used (docs/capacity.md, issue #31). `malloc_trim(0)` returns those free pages; it takes
milliseconds against a batch's seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl, not macOS)


def trim_heap() -> bool:
    """Return the heap's free pages to the OS; False where the C library cannot."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
