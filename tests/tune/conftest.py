"""Helpers for tune tests: tiny data and tiny trials."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_folder

# Tiny trials: 16-px images, no gallery of worst mistakes (its plot is the slow part).
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0}
TINY_ARGS = ["data.img_size=16", "eval.worst_mistakes=0"]


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """3 classes x 24 images of 16 px: a validation split of 11 images."""
    return write_folder(tmp_path / "small", classes=3, per_class=24, size=16)


def lr_space(tmp_path: Path) -> Path:
    """A grid whose three trials end three ways: diverge (lr 1e4), learn nothing and get
    pruned (lr 1e-9), learn (lr 2e-3). Grid order with seed 0: the last choice comes first."""
    file = tmp_path / "lr.yaml"
    file.write_text(
        "set: {train.optimizer: adam, train.scheduler: none}\n"
        "params:\n"
        "  train.lr: {type: categorical, choices: [1.0e+4, 1.0e-9, 2.0e-3]}\n",
        encoding="utf-8",
    )
    return file


class Server:
    """A PostgreSQL server of one test's own, which the test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        import os
        import subprocess

        from tests.conftest import _free_port, _pg_bin

        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
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
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        import subprocess

        subprocess.run([*self.ctl, "-o", self.options, "-l", str(self.log), "start"],
                       check=True, capture_output=True)  # fmt: skip

    def stop(self) -> None:
        import subprocess

        subprocess.run([*self.ctl, "-m", "fast", "stop"], check=False, capture_output=True)


@pytest.fixture
def own_postgres():
    """A running PostgreSQL server for this test alone (stopped and removed at its end)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cnnlab-pg-own-"))
    server = Server(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
