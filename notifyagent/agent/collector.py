"""Python's cyclic garbage collector, held back while the agent builds its large tables.

Loading 100,000 jobs creates several objects per job, none in a reference cycle; the collector
would scan the growing heap again and again meanwhile (a fifth of the load time). Refcounting
frees everything as usual; a pass runs when the load is done.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (nested uses and a collector already off are kept)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
