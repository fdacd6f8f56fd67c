"""Shared fixtures: tiny generated image folders and a way to prove a folder was not touched."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Keep every test offline and its caches inside the test's own temp folder.
os.environ.setdefault("CNNLAB_OFFLINE", "1")
# Tracking is on by default for users; tests that do not test it leave it off (each tracked
# run starts an MLflow process). tests/track/ turns it back on, through the true default.
os.environ["CNNLAB_TRACK"] = "none"
# The tracking process runs at the lowest priority for users; on a busy shared test machine
# it would starve, and every test that waits for it would crawl.
os.environ.setdefault("CNNLAB_TRACK_NICE", "0")


# What every finished run folder must hold (the run-folder contract in docs/architecture.md).
RUN_FILES = (
    "config.yaml",
    "classes.json",
    "split.csv",
    "data_report.json",
    "metrics.csv",
    "summary.json",
    "model.safetensors",
    "model.json",
    "report.html",
    "checkpoints/last.ckpt",
    "plots/learning_curves.png",
)


def make_class_image(label: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A small RGB picture whose class is learnable: a shape and a colour per class."""
    bg = tuple(int(v) for v in rng.integers(0, 60, size=3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    colours = [(230, 40, 40), (40, 200, 40), (40, 80, 230), (220, 220, 40), (200, 40, 200)]
    colour = colours[label % len(colours)]
    jitter = int(rng.integers(-3, 4))
    lo, hi = size // 4 + jitter, 3 * size // 4 + jitter
    if label % 3 == 0:
        draw.ellipse([lo, lo, hi, hi], fill=colour)
    elif label % 3 == 1:
        draw.rectangle([lo, lo, hi, hi], fill=colour)
    else:
        draw.polygon([(size // 2, lo), (lo, hi), (hi, hi)], fill=colour)
    noise = rng.integers(0, 25, size=(size, size, 3), dtype=np.uint8)
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def write_folder(
    root: Path,
    classes: int = 3,
    per_class: int = 12,
    size: int = 32,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write ROOT/<class>/<i><ext> with learnable images; returns ROOT."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_class_image(c, rng, size).save(folder / f"img_{i:03d}{ext}")
    return root


def write_messy_folder(root: Path, seed: int = 0) -> Path:
    """Real-shaped data: odd class names, mixed sizes, a 3-image class and duplicates.

    Classes ``chat noir`` and ``café 猫`` hold 10 images each (sizes 24, 32, 47 px and a
    40x28 landscape), ``tiny`` holds 3. ``chat noir/copy.png`` repeats ``chat noir/img_000``
    (an exact duplicate in one class) and ``café 猫/conflict.png`` repeats
    ``chat noir/img_001`` (the same bytes under two labels).
    """
    rng = np.random.default_rng(seed)
    sizes = [(24, 24), (32, 32), (47, 47), (40, 28)]
    for label, (name, count) in enumerate({"chat noir": 10, "café 猫": 10, "tiny": 3}.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = make_class_image(label, rng, 32).resize(sizes[i % len(sizes)])
            img.save(folder / f"img_{i:03d}.png")
    (root / "chat noir" / "copy.png").write_bytes((root / "chat noir" / "img_000.png").read_bytes())
    conflict = (root / "chat noir" / "img_001.png").read_bytes()
    (root / "café 猫" / "conflict.png").write_bytes(conflict)
    return root


PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")  # scikit-image's bundled photographs


def write_photo_folder(root: Path, per_class: int = 40, size: int = 64, seed: int = 0) -> Path:
    """ROOT/<photo>/<i>.jpg: random crops of four real photographs, one class per photograph.

    A set where ImageNet features help (a cat, a cup, a rocket, a person, each seen in many
    crops, flips and lighting changes), the way a user's small folder of photos does.
    """
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        short = min(photo.size)
        for i in range(per_class):
            side = int(short * rng.uniform(0.45, 0.9))
            x0 = int(rng.integers(0, photo.width - side + 1))
            y0 = int(rng.integers(0, photo.height - side + 1))
            crop = photo.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            arr = np.asarray(crop, dtype=np.float32) * rng.uniform(0.7, 1.3)
            arr += rng.normal(0, 6, size=arr.shape)
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
                folder / f"{i:03d}.jpg", quality=90
            )
    return root


def folder_digest(root: Path) -> dict[str, str]:
    """Path -> sha256 of every file under root (symlinks recorded by target, not followed)."""
    digest: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(filenames) + sorted(
            d for d in dirnames if Path(dirpath, d).is_symlink()
        ):
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                digest[rel] = "link:" + os.readlink(path)
            else:
                digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own CNNLAB_CACHE so no state leaks between tests."""
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path_factory.mktemp("cnnlab-cache")))


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """3 classes x 12 images of 32 px, flat ROOT/<class>/* layout."""
    return write_folder(tmp_path / "tiny", classes=3, per_class=12)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is needed for this test: install it with "
            "`sudo apt-get install -y postgresql` (or run scripts/system_deps.sh)"
        )
    return found[-1].parent


class PostgresServer:
    """A PostgreSQL server on a free loopback port in ``folder``, which a test may stop and
    start again. As root it runs as the `postgres` user (initdb refuses root)."""

    def __init__(self, folder: Path) -> None:
        import subprocess

        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(folder, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        bin_dir, data, port = _pg_bin(), folder / "data", _free_port()
        subprocess.run(
            [*self.prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust"], check=True, capture_output=True,
        )  # fmt: skip
        self.ctl = [*self.prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
        self.options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        self.log = folder / "log"
        self.base = f"postgresql://postgres@127.0.0.1:{port}"  # no database
        self.url = f"{self.base}/postgres"

    def start(self) -> None:
        import subprocess

        subprocess.run([*self.ctl, "-o", self.options, "-l", str(self.log), "start"],
                       check=True, capture_output=True)  # fmt: skip

    def stop(self) -> None:
        import subprocess

        subprocess.run([*self.ctl, "-m", "fast", "stop"], check=False, capture_output=True)

    def stop_while_training(self, args: list[str], runs: Path) -> tuple[int, str, str]:
        """Run ``cnnlab ARGS``, stop this server once two run folders in ``runs`` have an
        epoch written, and return the exit code, stdout and stderr."""
        import subprocess
        import sys
        import time

        env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 300

        def training() -> int:
            return sum(len(m.read_text().splitlines()) > 1 for m in runs.glob("*/metrics.csv"))

        while training() < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no two runs training after 300 s: {runs}"
            time.sleep(0.2)
        self.stop()
        stdout, stderr = proc.communicate(timeout=600)
        return proc.returncode, stdout, stderr


@contextlib.contextmanager
def _running_server(prefix: str) -> Iterator[PostgresServer]:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = PostgresServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server shared by the session; its base URL (no database)."""
    with _running_server("cnnlab-pg-") as server:
        yield server.base


@pytest.fixture
def own_postgres():
    """A running PostgreSQL server for this test alone (stopped and removed at its end)."""
    with _running_server("cnnlab-pg-own-") as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import uuid

    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(f"{postgres_server}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{postgres_server}/{name}"


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler, as in a terminal, for tests of cnnlab's Ctrl-C handling: a
    suite started in the background (``cmd &``, nohup) inherits SIGINT ignored, which cnnlab
    rightly leaves alone."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone); reads /proc."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
