"""Python's cyclic garbage collector, held back while the agent builds its large tables.

Loading 100,000 jobs creates several objects per job, none in a reference cycle; the collector
would scan the growing heap again and again meanwhile (a fifth of the load time). Refcounting
frees everything as usual; a pass runs when the load is done, and what it leaves is frozen
out of later passes (:func:`settle`).
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


def settle() -> None:
    """After a full load: one full pass (no cycle is left behind to leak), then every object
    left is moved out of the collector's way (``gc.freeze``), so later passes no longer scan
    the tables of every job (a full pass takes ~25 ms per 100,000 jobs, stalling the event
    loop; the load's leftovers would soon trigger one). Frozen objects are still freed by
    refcounting as usual; a reference cycle among them (a run in flight at the freeze, ended
    with an exception since) is freed by the next settle, which thaws everything first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
