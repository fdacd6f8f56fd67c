"""Start-up costs that are not the work: garbage collection over the import-time heap.

Importing torch, Lightning and torchmetrics creates a few million Python objects that live as
long as the process. CPython's cyclic garbage collector walks all of them in every full
collection: many times during the imports, again during training, and once more when the
interpreter exits. Measured on a trivial ``cnnlab train`` (issue 11, bench/RESULTS.md): with
the stack imported while collection is paused and then frozen (``gc.freeze``: frozen objects
are never walked again), and the rest frozen before exit, the process used 20-30 % less CPU.

Objects frozen are still freed by reference counting; only cyclic garbage that already exists
at the moment of freezing is kept for the life of the process, which is why the freeze after
imports happens once per process.

Example:
    >>> with heavy_imports():  # doctest: +SKIP
    ...     import lightning
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_frozen = False  # the import-time heap was frozen in this process


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """Run imports with garbage collection paused, then freeze everything alive (once)."""
    global _frozen
    if _frozen:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()
    _frozen = True


def freeze_before_exit() -> None:
    """Spare a command-line process the interpreter's last full collection (~1 s with torch)."""
    gc.freeze()
