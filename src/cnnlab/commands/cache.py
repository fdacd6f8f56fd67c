"""``cnnlab cache list`` and ``cnnlab cache clean``: see and free ``$CNNLAB_CACHE``.

Thin shells over :mod:`cnnlab.cachedir`; everything in the cache can be rebuilt.
"""

from __future__ import annotations

import time

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.3f} GB" if nbytes >= 1e7 else f"{nbytes / 1e6:.2f} MB"


@app.command("list")
def list_command() -> None:
    """Show every cache entry (least recently used first), its size and last use.

    Example:

        cnnlab cache list
    """
    import shutil

    from rich.table import Table

    from cnnlab.cachedir import budget_bytes, entries, leftovers
    from cnnlab.console import result
    from cnnlab.paths import cache_root

    root = cache_root()
    found = entries(root)
    table = Table("kind", "entry", "size", "last used")
    for e in found:
        table.add_row(
            e.kind,
            e.key,
            _gb(e.bytes),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used)),
        )
    result(table)
    used = sum(e.bytes for e in found)
    free = shutil.disk_usage(root).free if root.is_dir() else 0
    stale = leftovers(root)
    result(
        f"{root}: {len(found)} entries, {_gb(used)}; {_gb(free)} free on its disk; default "
        f"budget {_gb(budget_bytes(used, free))} (cache.max_gb sets it)"
        + (f"; {len(stale)} leftover temporary file(s) of killed processes" if stale else "")
    )


@app.command("clean")
def clean_command(
    older_than: float = typer.Option(
        None, "--older-than", min=0.0, help="Only entries unused for more than DAYS days."
    ),
) -> None:
    """Free the cache: every entry (or those unused for DAYS), and leftovers of killed runs.

    Example:

        cnnlab cache clean --older-than 30
    """
    from cnnlab.cachedir import clean
    from cnnlab.console import result
    from cnnlab.paths import cache_root

    removed, freed = clean(older_than)
    result(f"{cache_root()}: removed {removed} entries, freed {_gb(freed)}")
