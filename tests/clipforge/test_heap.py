"""`trim_heap` gives freed heap memory back: what keeps a model actor's RSS near its use."""

from __future__ import annotations

import numpy as np
import psutil

from clipforge.heap import trim_heap


def test_freed_heap_memory_goes_back_to_the_os() -> None:
    me = psutil.Process()
    # 200 MB in 100 KB blocks (below glibc's mmap threshold: they live in the heap), freed but
    # for the last one, which pins the heap's top so that free() alone cannot shrink it.
    blocks = [np.ones(100 * 1024, dtype=np.uint8) for _ in range(2000)]
    last = blocks[-1]
    del blocks
    freed = me.memory_info().rss
    assert trim_heap()
    assert freed - me.memory_info().rss > 100 * 2**20
    assert last.sum() == last.size
