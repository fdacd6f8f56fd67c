"""``cnnlab cache list`` and ``cnnlab cache clean``: see and free ``$CNNLAB_CACHE``.

Thin shells over :mod:`cnnlab.cachedir`; everything in the cache can be rebuilt.
"""

from __future__ import annotations

import time

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


@app.command("list")
def list_command() -> None:
    """Show every cache entry (least recently used first), its size and last use, and the
    temporary files of entries being written or left by killed processes.

    Example:

        cnnlab cache list
    """
    from rich.table import Table

    from cnnlab.cachedir import budget_bytes, disk_free, entries, format_size, temp_files
    from cnnlab.console import result
    from cnnlab.paths import usable_cache_root

    root = usable_cache_root()
    found, temps = entries(root), temp_files(root)
    table = Table("kind", "entry", "size", "last used", *(["note"] if temps else []))
    for e in found:
        table.add_row(e.kind, e.key, format_size(e.bytes), _when(e.last_used))
    for t in temps:
        note = "temporary file"
        if t.leftover:
            note = "left by a killed process"
        elif t.writer:
            note = f"being written by {t.writer}"
        row = (t.path.parent.name, t.path.name, format_size(t.bytes), _when(t.modified), note)
        table.add_row(*row)
    result(table)
    used = sum(e.bytes for e in found) + sum(t.bytes for t in temps)
    free = disk_free(root)
    stale = [t for t in temps if t.leftover]
    where = f"{root}" if root.is_dir() else f"{root} (not created yet)"
    result(
        f"{where}: {len(found)} entries"
        + (f" and {len(temps)} temporary file(s)" if temps else "")
        + f", {format_size(used)}; {format_size(free)} free on its "
        f"disk; default budget {format_size(budget_bytes(used, free))} (cache.max_gb sets it)"
        + (
            f"; {len(stale)} leftover temporary file(s) of killed processes, "
            f"{format_size(sum(t.bytes for t in stale))} (cnnlab cache clean removes them)"
            if stale
            else ""
        )
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
    from cnnlab.cachedir import clean, format_size, leftovers
    from cnnlab.console import result
    from cnnlab.paths import usable_cache_root

    root = usable_cache_root()
    stale = len(leftovers(root))
    removed, freed = clean(older_than, root)
    temps = f" and {stale} leftover temporary file(s) of killed processes" if stale else ""
    result(f"{root}: removed {removed} entries{temps}, freed {format_size(freed)}")
