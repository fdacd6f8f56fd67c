"""Two "nodes" of one CPU process each (torchrun twice on loopback, gloo): one run folder,
one report, the same weights on both ranks, and the metrics of a single-process run of the
same global batch."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.conftest import folder_digest, write_folder

# The real CLI, with each rank's final weights saved beside the runs (the test's only hook:
# it observes `_train`, it changes nothing).
RANK_SCRIPT = """
import os, sys
from safetensors.torch import save_file
import cnnlab.engine.fit as fit
real = fit._train
def observed(cfg, data, mb, run_dir, resume, callbacks):
    outcome = real(cfg, data, mb, run_dir, resume, callbacks)
    state = {k: v.detach().contiguous().clone() for k, v in mb.model.state_dict().items()}
    name = "rank%s.safetensors" % os.environ["RANK"]
    save_file(state, os.path.join(os.environ["RANK_OUT"], name))
    return outcome
fit._train = observed
from cnnlab.cli import main
sys.argv = ["cnnlab", *sys.argv[1:]]
main()
"""
COMMON = (
    "--epochs", "3", "--seed", "3", "model.cnn.filters=[8,16]", "train.min_steps=0",
    "data.augment=none", "train.accelerator=cpu", "track.backend=none", "eval.explain=false",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_row(run: Path) -> dict[str, float]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as fh:
        row = list(csv.DictReader(fh))[-1]
    return {k: float(v) for k, v in row.items() if k.startswith(("train/", "val/")) and v}


@pytest.mark.slow
def test_two_torchrun_nodes_write_one_run_equal_to_one_process(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", classes=3, per_class=20, size=16)
    before = folder_digest(root)
    runs, out = tmp_path / "runs", tmp_path / "ranks"
    out.mkdir()
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    port = str(_free_port())
    args = ("train", str(root), *COMMON, "--runs-dir", str(runs), "--name", "mn")
    ddp = ("train.batch_size=4", "train.num_nodes=2", "train.devices=1", "train.strategy=ddp")
    procs = []
    for node in (0, 1):
        env = dict(
            os.environ, NO_COLOR="1", COLUMNS="200", RANK_OUT=str(out),
            CNNLAB_CACHE=str(tmp_path / f"cache-node{node}"),  # each node its own disk
        )  # fmt: skip
        torchrun = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
            "--nproc-per-node", "1", "--node-rank", str(node), "--master-addr", "127.0.0.1",
            "--master-port", port, str(script), *args, *ddp,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                torchrun, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["mn"]  # one run folder for both nodes
    run = runs / "mn"
    assert (run / "report.html").is_file() and (run / "summary.json").is_file()
    assert outputs[0][0].count("report:") == 1 and "report:" not in outputs[1][0]
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept them identical
    saved = load_file(run / "model.safetensors")
    assert all(torch.equal(saved[k], rank0[k]) for k in saved)
    # one process, the same global batch (2 nodes x 4)
    single = subprocess.run(
        [sys.executable, "-m", "cnnlab", *args[:-2], "--name", "single", "train.batch_size=8"],
        env=dict(os.environ, NO_COLOR="1", CNNLAB_CACHE=str(tmp_path / "cache-node0")),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    multi, one = _last_row(run), _last_row(runs / "single")
    print("two nodes:", multi, "\none process:", one)
    assert abs(multi["val/accuracy"] - one["val/accuracy"]) <= 0.15
    assert abs(multi["val/loss"] - one["val/loss"]) <= 0.25
    assert folder_digest(root) == before
