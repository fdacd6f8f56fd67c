"""A killed or stuck process never blocks the cache: decode workers die with their parent,
forked children never keep a cache lock, a waiter says who it waits for and takes over from a
holder that is gone or makes no progress, and a killed writer's temporary file is listed by
``cnnlab cache list`` and removed by ``cnnlab cache clean``."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import folder_digest, make_class_image, process_alive

from cnnlab import cachedir, cachelock
from cnnlab.paths import cache_root

CNNLAB = [sys.executable, "-m", "cnnlab"]

# holds a cache lock like an orphaned decode worker of an older cnnlab: the lock file names
# the holder given on the command line (a dead parent), the flock is this process's
HOLDER = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, sys.argv[2].encode(), 0)
print("locked", flush=True)
time.sleep(600)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, COLUMNS="250", NO_COLOR="1", CNNLAB_CACHE=str(cache_root()))


def _photos(root: Path, per_class: int) -> Path:
    """400x300 JPEGs (what a phone or camera folder holds, scaled down): slow enough to decode
    that a kill lands mid-decode. Class names with a space and a non-ASCII letter."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(["chat noir", "café", "dog", "bird"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = make_class_image(label, rng, 32).resize((400, 300))
            img.save(folder / f"IMG {i:04d}.JPG", quality=92)
    return root


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _run_and_sleep(running) -> None:
    running.set()
    time.sleep(60)


def _wait_for(check, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(step)
    return None


def _record(pid: int, command: str = "cnnlab train") -> str:
    holder = cachelock.Holder(pid, os.uname().nodename, "", time.time() - 60, command)
    return json.dumps(holder.__dict__)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    return int(done.stdout)


def _hold(lock: Path, record: str) -> subprocess.Popen:
    lock.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), record],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_mid_decode_leaves_no_worker_and_the_rerun_finishes(tmp_path: Path) -> None:
    root = _photos(tmp_path / "my photos", per_class=200)
    before = folder_digest(root)
    cmd = [*CNNLAB, "train", str(root), "--runs-dir", str(tmp_path / "runs"), "--track",
           "none", "--epochs", "1", "data.img_size=32", "model.name=tiny_cnn",
           "eval.explain=false"]  # fmt: skip
    images = cache_root() / "images"
    train = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the decode workers are forked once the entry's temporary file exists
        workers = _wait_for(lambda: list(images.glob(".*.tmp")) and _children(train.pid), 300)
        assert workers, "no decode worker was seen"
    finally:
        train.send_signal(signal.SIGKILL)
        train.wait()
    try:
        assert _wait_for(lambda: not any(map(process_alive, workers)), 30), "workers outlived it"
    finally:
        for pid in workers:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
    listing = subprocess.run([*CNNLAB, "cache", "list"], env=_env(), capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "left by a killed process" in listing.stdout
    assert "1 leftover temporary file(s) of killed processes" in listing.stdout

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "waiting for" not in rerun.stdout + rerun.stderr  # the dead run held nothing
    assert not list(images.glob(".*.tmp"))  # the leftover went before the new entry was made
    assert len(list(images.glob("*.npy"))) == 1
    assert folder_digest(root) == before


def test_a_forked_child_never_keeps_a_cache_lock() -> None:
    """flock locks belong to the open file, which a fork shares: a child must not hold the
    lock after the parent lets go (or dies)."""
    ctx = multiprocessing.get_context("fork")
    running = ctx.Event()
    with cachelock.entry_lock("images-abc", "the entry"):
        child = ctx.Process(target=_run_and_sleep, args=(running,))
        child.start()
    try:
        assert running.wait(60)
        lock = cache_root() / "locks" / "images-abc.lock"
        fd = os.open(lock, os.O_RDWR)
        try:
            assert cachelock._try_lock(fd), "the forked child still holds the lock"
        finally:
            os.close(fd)
        assert cachelock.holder_of(lock) is None  # released: names no holder
    finally:
        child.kill()
        child.join()


def test_a_waiter_says_who_holds_the_lock_and_takes_over_from_a_dead_one(capsys) -> None:
    lock = cache_root() / "locks" / "images-k1.lock"
    dead = _dead_pid()
    orphan = _hold(lock, _record(dead))  # the dead run's worker still holds the flock
    try:
        with cachelock.entry_lock("images-k1", "the decoded image cache of /data"):
            held = cachelock.holder_of(lock)
            assert held is not None and held.pid == os.getpid()
    finally:
        orphan.kill()
        orphan.wait()
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert f"waiting for the decoded image cache of /data: pid {dead} (cnnlab train, since" in text
    assert f"pid {dead} (cnnlab train), is gone; taking its lock" in text


def test_a_holder_that_makes_no_progress_is_not_waited_for(capsys) -> None:
    lock = cache_root() / "locks" / "scan-k2.lock"
    holder = _hold(lock, "")  # alive, names no holder (older cnnlab), stuck
    try:
        old = time.time() - cachelock.STALL_S - 60
        os.utime(lock, (old, old))
        with cachelock.entry_lock("scan-k2", "the scan of /data"):
            pass
    finally:
        holder.kill()
        holder.wait()
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "waiting for the scan of /data: another process holds its lock" in text
    assert "has made no progress for 11 min; taking its lock" in text


def test_a_live_holder_is_waited_for_and_its_progress_keeps_it(capsys) -> None:
    """A holder that is alive and working keeps its lock: the waiter only waits."""
    lock = cache_root() / "locks" / "images-k3.lock"
    holder = _hold(lock, "")
    os.utime(lock)  # touched just now: progressing
    try:
        timer = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(2); "
                                  f"import os; os.kill({holder.pid}, 9)"])  # fmt: skip
        with cachelock.entry_lock("images-k3", "the entry"):
            assert holder.poll() is not None  # got it only once the holder let go
        timer.wait()
    finally:
        holder.kill()
        holder.wait()
    text = capsys.readouterr()
    assert "waiting for the entry" in text.out and "taking" not in text.out + text.err


def test_a_killed_writers_temp_file_is_a_leftover_at_once(tmp_path: Path) -> None:
    """The temporary file of an entry built under a lock is a leftover as soon as the lock
    names no live holder; one whose builder lives is kept; an unlocked one of an entry
    without a lock (features, JSON) only once it is old."""
    images, locks = cache_root() / "images", cache_root() / "locks"
    images.mkdir(parents=True)
    locks.mkdir()
    dead = images / ".aaaa.npy.k1l2m3n4.tmp"
    dead.write_bytes(b"\0" * 5000)
    (locks / "images-aaaa.lock").write_text(_record(_dead_pid()))
    live = images / ".bbbb.npy.p5q6r7s8.tmp"
    live.write_bytes(b"\0" * 5000)
    (locks / "images-bbbb.lock").write_text(_record(os.getppid(), "cnnlab study"))
    young = images / ".cccc.json.t9u0v1w2.tmp"
    young.write_bytes(b"{}")
    temps = {t.path: t for t in cachedir.temp_files()}
    assert temps[dead].leftover and not temps[young].leftover and not temps[live].leftover
    assert temps[live].writer.startswith(f"pid {os.getppid()} (cnnlab study")
    assert cachedir.clean_leftovers() >= 5000
    assert not dead.exists() and live.exists() and young.exists()
