"""Building many small objects fast: pausing Python's cyclic garbage collector while we do.

Parsing an export and listing the errors of a large evaluation build millions of small acyclic
objects; every time the collector's thresholds are crossed it walks the whole growing heap. Measured
here: ``json.loads`` of a 10k-task export three to five times slower with it running
(bench/bench_studio.py), the error list of 1M spans twice as slow (bench/bench_evaluate.py). These
objects form no reference cycles and reference counting still frees them, so pausing costs no memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block; restore it as it was after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
