"""``$CNNLAB_CACHE`` under control: budget with LRU eviction, a clear error when the disk is
full, leftovers of killed processes cleaned, and ``cnnlab cache list|clean``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder

from cnnlab import cachedir, cachelock
from cnnlab.data.cache import build_cache
from cnnlab.paths import cache_root

CNNLAB = [sys.executable, "-m", "cnnlab"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, COLUMNS="200", NO_COLOR="1", **(env or {}))
    return subprocess.run([*CNNLAB, *args], capture_output=True, text=True, env=full, timeout=600)


def _paths(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def _age(paths: list[Path], days: float) -> None:
    old = time.time() - days * 86400
    for p in paths:
        os.utime(p, (old, old))


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    a = write_folder(tmp_path / "a", classes=2, per_class=10, size=24, seed=1)
    b = write_folder(tmp_path / "b", classes=2, per_class=10, size=24, seed=2)
    return a, b


def test_the_budget_evicts_the_least_recently_used_entry(two_folders) -> None:
    a, b = two_folders
    entry_bytes = 20 * 3 * 32 * 32  # 20 images, 3 channels, 32 px: 61 kB
    try:
        first = build_cache(a, _paths(a), side=32, channels=3, mode="disk", progress=False)
        _age([first.path, first.path.with_suffix(".json")], days=2)
        cachedir.configure(1.6 * entry_bytes / 1e9)  # room for one entry, not two
        second = build_cache(b, _paths(b), side=32, channels=3, mode="disk", progress=False)
    finally:
        cachedir.configure(None)
    assert not first.path.exists() and second.path.exists()
    assert [e.kind for e in cachedir.entries() if e.kind == "images"] == ["images"]
    # the evicted entry's files were memory-mapped by `first`: still readable here
    assert int(first.images.sum()) > 0


def test_an_entry_larger_than_the_budget_fails_before_evicting_anything(two_folders) -> None:
    """Evicting cannot make room for an entry larger than cache.max_gb: the cache is left as
    it was, and the message shows the need above the budget (MB, not "0.00 GB vs 0.00 GB")."""
    a, b = two_folders
    kept = build_cache(a, _paths(a), side=32, channels=3, mode="disk", progress=False)
    before = sorted(p for e in cachedir.entries() for p in e.paths)
    cachedir.configure(0.00005)  # 50 kB; the entry needs 20 x 3 x 32 x 32 + 4 kB = 65.5 kB
    try:
        with pytest.raises(cachedir.CacheSpaceError) as caught:
            build_cache(b, _paths(b), side=32, channels=3, mode="disk", progress=False)
    finally:
        cachedir.configure(None)
    message = str(caught.value)
    assert "needs 0.066 MB, more than the cache budget cache.max_gb=5e-05 (0.050 MB)" in message
    assert "nothing was evicted" in message
    assert sorted(p for e in cachedir.entries() for p in e.paths) == before
    assert kept.path.exists() and len(list(cache_root().rglob("*.npy"))) == 1


def test_sizes_are_printed_with_digits_enough_to_compare() -> None:
    assert cachedir.format_size(6_900_000, 5_000_000) == "6.9 MB"
    assert cachedir.format_size(1_040_000, 1_000_000) == "1.04 MB"
    assert cachedir.format_size(49.15e9) == "49.15 GB"
    assert cachedir.format_size(225_000) == "0.225 MB"
    assert cachedir.format_size(0) == "0 MB"


def test_cache_list_of_a_cache_not_created_yet_measures_the_disk_it_will_use(
    tmp_path: Path,
) -> None:
    """CNNLAB_CACHE that does not exist yet: the free space of the disk it will be made on,
    not "0.00 MB free" (which reads as "caching will fail")."""
    import re

    root = tmp_path / "not" / "yet"
    listing = _cli("cache", "list", env={"CNNLAB_CACHE": str(root)})
    assert listing.returncode == 0, listing.stderr
    line = " ".join(listing.stdout.split())
    assert f"{root} (not created yet): 0 entries" in line
    free = re.search(r"; ([\d.]+) [MG]B free on its disk; default budget ([\d.]+) [MG]B", line)
    assert free and float(free[1]) > 0 and float(free[2]) > 0, line
    assert not root.exists()


def test_a_full_disk_is_a_one_line_error_not_sigbus(tmp_path: Path) -> None:
    """The file-size limit makes the kernel refuse the cache's blocks as a full disk would."""
    root = write_folder(tmp_path / "data", classes=2, per_class=20, size=64)
    before = folder_digest(root)
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "from cnnlab.cli import main\n"
        "sys.argv = ['cnnlab'] + sys.argv[1:]\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "train", str(root), "--runs-dir", str(tmp_path / "runs"),
         "data.cache=disk", "data.img_size=128", "track.backend=none"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_COLOR="1"),
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "no room for the decoded image cache" in lines[-1] and "Traceback" not in out.stderr
    assert not list(cache_root().rglob("*.npy")) and folder_digest(root) == before


def test_cache_list_and_clean_from_the_command_line(two_folders) -> None:
    a, b = two_folders
    old = build_cache(a, _paths(a), side=32, channels=3, mode="disk", progress=False)
    new = build_cache(b, _paths(b), side=32, channels=3, mode="disk", progress=False)
    _age([old.path, old.path.with_suffix(".json")], days=10)
    images = cache_root() / "images"
    dead = images / ".abc.npy.x1.tmp"  # a killed writer's half-written file
    dead.write_bytes(b"\0" * 1000)
    _age([dead], days=1)
    live = images / ".def.npy.x2.tmp"  # a running writer's file: locked, kept
    live.write_bytes(b"\0" * 1000)
    _age([live], days=1)
    env = {"CNNLAB_CACHE": str(cache_root())}
    with cachelock.writer_lock(live):
        listing = _cli("cache", "list", env=env)
        assert listing.returncode == 0, listing.stderr
        assert old.path.stem in listing.stdout and new.path.stem in listing.stdout
        assert "1 leftover temporary file" in " ".join(listing.stdout.split())
        cleaned = _cli("cache", "clean", "--older-than", "5", env=env)
        assert cleaned.returncode == 0, cleaned.stderr
        assert "removed 1 entries" in cleaned.stdout
        assert not old.path.exists() and new.path.exists()
        assert not dead.exists() and live.exists()
    everything = _cli("cache", "clean", env=env)
    assert everything.returncode == 0 and not new.path.exists()
    assert not any(e.kind == "images" for e in cachedir.entries())


def test_a_cache_that_is_a_file_is_the_same_error_everywhere(tmp_path: Path) -> None:
    """docs/scaling.md: an unusable CNNLAB_CACHE is named in the error. `cache list` called a
    file "not created yet" and `cache clean` "removed 0 entries" (exit 0); training failed
    on `<file>/scan`. All three now give one line from one check."""
    data = write_folder(tmp_path / "my data", classes=2, per_class=4)
    before = folder_digest(data)
    cache = tmp_path / "cache file"
    cache.write_text("not a folder")
    expected = f"error: CNNLAB_CACHE {cache} is a file, not a folder; set CNNLAB_CACHE to a folder"
    env = {"CNNLAB_CACHE": str(cache)}
    runs = str(tmp_path / "runs")
    for args in (["cache", "list"], ["cache", "clean"], ["train", str(data), "--runs-dir", runs]):
        out = _cli(*args, env=env)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2 and lines[-1].startswith(expected), (args, out.stderr)
        assert "Traceback" not in out.stderr and "not created yet" not in out.stdout
        assert "--runs-dir" not in out.stderr
    below = _cli("cache", "list", env={"CNNLAB_CACHE": str(cache / "sub")})
    assert below.returncode == 2 and f"cannot be made: {cache} is a file" in below.stderr
    assert cache.read_text() == "not a folder" and folder_digest(data) == before


def test_reading_a_scan_ledger_or_feature_entry_marks_it_used(two_folders) -> None:
    """Access times are kept lazily (relatime: not again within a day of the last one), so
    every reader touches what it used: `cache list` shows the last use, and an active
    dataset's scan and split ledger are not the first entries evicted or cleaned."""
    import torch

    from cnnlab.data.ledger import load_ledger, save_ledger
    from cnnlab.data.scan import scan_dataset
    from cnnlab.engine.features import _cache_file, _load_cached, _save_cached

    a, _ = two_folders
    scan_dataset(a, progress=False, workers=1)
    save_ledger("key", {"x.png": ("c", "val")}, [])
    file = _cache_file("feats")
    _save_cached(file, torch.zeros(4, 3), "digest")
    kinds = ("scan", "splits", "features")
    now = time.time()
    for entry in cachedir.entries():
        _age(entry.paths, days=5)

    scan_dataset(a, progress=False, workers=1)  # from the scan cache
    assert load_ledger("key", []) == {"x.png": ("c", "val")}
    assert _load_cached(file, 4, 1, "digest") is not None
    # a read leaves the modification time alone: only the reader's touch moves it
    touched = {e.kind: max(p.stat().st_mtime for p in e.paths) for e in cachedir.entries()}
    assert all(touched[kind] > now - 60 for kind in kinds), touched
