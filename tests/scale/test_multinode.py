"""Two "nodes" of one CPU process each (torchrun twice on loopback, gloo): one run folder,
one report, the same weights on both ranks, one decode of the shared cache, and the metrics
of a single-process run of the same global batch.

Kept small on purpose (24 images of 16 px, one epoch of 2 steps of 8 images): the cost is the three
interpreters and the rendezvous, not the training.
"""

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

import cnnlab
import cnnlab.data.cache as image_cache

# The real CLI, observed (it changes nothing): each rank saves its final weights and notes
# every decode of the image cache it does, beside the runs.
RANK_SCRIPT = """
import os, sys
from safetensors.torch import save_file
import cnnlab.data.cache as image_cache
import cnnlab.engine.fit as fit
out, rank = os.environ["RANK_OUT"], os.environ["RANK"]
real_train, real_write = fit._train, image_cache._write_disk
def observed_train(cfg, data, mb, run_dir, resume, callbacks):
    outcome = real_train(cfg, data, mb, run_dir, resume, callbacks)
    state = {k: v.detach().contiguous().clone() for k, v in mb.model.state_dict().items()}
    save_file(state, os.path.join(out, "rank%s.safetensors" % rank))
    return outcome
def observed_write(*args, **kwargs):
    with open(os.path.join(out, "decoded-by-rank%s" % rank), "a") as fh:
        fh.write("1")
    return real_write(*args, **kwargs)
fit._train, image_cache._write_disk = observed_train, observed_write
from cnnlab.cli import main
sys.argv = ["cnnlab", *sys.argv[1:]]
main()
"""
SETTINGS = {
    "epochs": 1, "seed": 3, "model__cnn__filters": [8, 16], "train__min_steps": 0,
    "data__augment": "none", "train__accelerator": "cpu", "track__backend": "none",
    "eval__explain": False, "eval__plot_processes": 1,
    "data__val_fraction": 0.2,  # 16 training images: 2 whole global batches, as one process
}  # fmt: skip


def _cli_args(settings: dict) -> list[str]:
    short = {"epochs": "--epochs", "seed": "--seed"}
    out = []
    for key, value in settings.items():
        if key in short:
            out += [short[key], str(value)]
        else:
            text = str(value).replace(" ", "") if isinstance(value, list) else str(value).lower()
            out.append(f"{key.replace('__', '.')}={text}")
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_row(run: Path) -> dict[str, float]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as fh:
        row = list(csv.DictReader(fh))[-1]
    return {k: float(v) for k, v in row.items() if k.startswith(("train/", "val/", "lr")) and v}


def _torchrun_nodes(script: Path, args: list[str], out: Path) -> list[tuple[str, str]]:
    """Both nodes at once, as two machines would start them; their (stdout, stderr)."""
    port = str(_free_port())
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200", RANK_OUT=str(out))
    procs = []
    for node in (0, 1):
        torchrun = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
            "--nproc-per-node", "1", "--node-rank", str(node), "--master-addr", "127.0.0.1",
            "--master-port", port, str(script), *args,
        ]  # fmt: skip
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(torchrun, env=env, stdout=pipe, stderr=pipe, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return outputs


@pytest.mark.slow
def test_two_torchrun_nodes_write_one_run_equal_to_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_folder(tmp_path / "data", classes=2, per_class=12, size=16)
    before = folder_digest(root)
    runs, out = tmp_path / "runs", tmp_path / "ranks"
    out.mkdir()
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    # both "nodes" use this test's $CNNLAB_CACHE, as the ranks of one node share its disk
    ddp = ["train.batch_size=4", "train.num_nodes=2", "train.devices=1", "train.strategy=ddp"]
    args = ["train", str(root), *_cli_args(SETTINGS), "--runs-dir", str(runs), "--name", "mn"]
    outputs = _torchrun_nodes(script, [*args, *ddp], out)
    assert [p.name for p in runs.iterdir()] == ["mn"]  # one run folder for both nodes
    run = runs / "mn"
    assert (run / "report.html").is_file() and (run / "summary.json").is_file()
    assert outputs[0][0].count("report:") == 1 and "report:" not in outputs[1][0]
    # the shared cache was decoded by one rank; the other waited and mapped the same entry
    decoded = sorted(f.name for f in out.glob("decoded-by-rank*"))
    assert len(decoded) == 1 and (out / decoded[0]).read_text() == "1"
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept them identical
    saved = load_file(run / "model.safetensors")
    assert all(torch.equal(saved[k], rank0[k]) for k in saved)
    # one process, the same global batch (2 nodes x 4), the same cache (no decode)
    writes: list[int] = []
    real_write = image_cache._write_disk
    monkeypatch.setattr(
        image_cache, "_write_disk", lambda *a, **k: writes.append(1) or real_write(*a, **k)
    )
    single = cnnlab.train(str(root), runs_dir=str(runs), name="single", batch_size=8, **SETTINGS)
    assert single is not None and writes == []
    multi, one = _last_row(run), _last_row(single.path)
    print("two nodes:", multi, "\none process:", one)
    assert multi["lr"] == pytest.approx(one["lr"])  # the same steps of the same schedule
    assert multi["train/loss"] == pytest.approx(one["train/loss"], abs=0.1)
    assert abs(multi["val/accuracy"] - one["val/accuracy"]) <= 0.2
    assert abs(multi["val/loss"] - one["val/loss"]) <= 0.1
    assert folder_digest(root) == before


def test_min_steps_counts_the_steps_of_each_ddp_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DDP each process steps through its share of the images: 1600 images at batch 64
    on 2 processes are 12 steps per epoch, not 25."""
    from cnnlab.config import TrainConfig
    from cnnlab.engine.plan import plan_batch_size, world_size

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    one = TrainConfig(epochs=1, min_steps=100, accelerator="cpu")  # the default batch, 64
    two = one.model_copy(update={"num_nodes": 2, "devices": 1})
    assert world_size(one) == 1 and world_size(two) == 2
    assert world_size(one.model_copy(update={"devices": "0,1,2"})) == 3
    assert plan_batch_size(one, 1600, world_size(one)) == 16  # 100 steps of 16
    assert plan_batch_size(two, 1600, world_size(two)) == 8  # 2 x 800: 100 steps of 8
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's word wins: it started the processes
    assert world_size(one) == 4
