"""Keep the cyclic garbage collector's pauses short.

``freeze_startup_heap``: what a server process builds at start-up lives as long as it does.

Pausing around bulk object creation:

Reading and writing 100k transactions allocates millions of small, acyclic objects; each
allocation burst triggers generation scans that find nothing to free and cost ~30-40% of
an import. Reference counting still frees everything; collection resumes afterwards.
A counter lets pauses nest and overlap (two imports on one event loop): the collector
comes back when the last one ends, and is never enabled if it was off to begin with.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
_lock = Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


def gc_paused(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return function(*args, **kwargs)

    return wrapper


def freeze_startup_heap() -> None:
    """Move everything alive now (imported modules, the container, their caches) out of the
    collector's sight: ``gc.freeze()``. A full collection walked all of it, about 200,000
    objects in an API process, which took 100-200 ms on the development machine, and every
    request in flight waited (the read benchmark's p99 of about 100 ms under load). What the
    process allocates later is collected as before; frozen objects are still freed by
    reference counting, only cycles among them would stay (there are none to speak of among
    start-up's modules and singletons). Called once, when the server has started."""
    gc.collect()
    gc.freeze()
