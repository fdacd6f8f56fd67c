"""ClassifierModule with a real Lightning Trainer on CPU: metrics, best weights, seeds, resume."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from engine_helpers import loader, make_module, separable_images

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import COLUMNS, ThroughputProbe
from cnnlab.engine.checkpoint import find_resume_checkpoint, safe_load_checkpoint
from cnnlab.engine.precision import cpu_has_native_bf16, resolve_precision
from cnnlab.engine.trainer import build_trainer, seed_everything


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _fit(train: TrainConfig, run_dir: Path, data=None, epochs: int | None = None, **kw):
    seed_everything(train.seed)
    x, y = data or separable_images(96)
    xv, yv = separable_images(48, seed=1)
    tl, vl = loader(x, y, shuffle=True), loader(xv, yv)
    module = make_module(train, len(tl), **kw)
    trainer = build_trainer(train, run_dir, epochs or train.epochs)
    trainer.fit(module, tl, vl)
    return module, trainer


def test_two_epochs_write_metrics_and_safe_checkpoints(tmp_path: Path, cpu_train, capsys) -> None:
    _fit(cpu_train, tmp_path)
    rows = _rows(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert tuple(rows[0]) == COLUMNS
    assert all(rows[-1][c] != "" for c in COLUMNS)
    assert float(rows[-1]["val/accuracy"]) > 0.9  # the task is easy: training really ran
    assert float(rows[-1]["images_per_s"]) > 0
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["best.ckpt", "last-prev.ckpt", "last.ckpt"]
    ckpt = safe_load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # weights_only=True
    assert ckpt["epoch"] == 1 and "optimizer_states" in ckpt
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "val/macro_f1" in out and "throughput" in out


def test_quiet_run_prints_nothing(tmp_path: Path, cpu_train, capsys) -> None:
    from cnnlab.console import set_quiet

    set_quiet(True)
    try:
        _fit(cpu_train, tmp_path, epochs=1)
    finally:
        set_quiet(False)
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_the_best_epoch(tmp_path: Path, cpu_train) -> None:
    # Validation labels are shifted by one class: the better the net learns the training
    # labels, the worse val/loss gets, so epoch 0 is the best and training stops early.
    train = cpu_train.model_copy(
        update={"epochs": 8, "monitor": "val/loss", "early_stopping": True, "patience": 2}
    )
    seed_everything(0)
    x, y = separable_images(96)
    xv, yv = separable_images(48, seed=1)
    final: dict = {}

    class KeepFinal(L.Callback):
        def on_train_end(self, trainer, pl_module):
            final.update({k: v.clone() for k, v in pl_module.state_dict().items()})

    module = make_module(train, 6)
    trainer = build_trainer(train, tmp_path, 8, callbacks_extra=[KeepFinal()])
    trainer.fit(module, loader(x, y, shuffle=True), loader(xv, (yv + 1) % 3))
    rows = _rows(tmp_path)
    losses = [float(r["val/loss"]) for r in rows]
    assert len(rows) == 3 and losses.index(min(losses)) == 0
    best = safe_load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert best["epoch"] == 0
    for key, value in module.state_dict().items():
        assert torch.equal(value, best["state_dict"][key]), key
    assert any(not torch.equal(final[k], v) for k, v in module.state_dict().items())


def test_same_seed_gives_identical_weights(tmp_path: Path, cpu_train) -> None:
    train = cpu_train.model_copy(update={"epochs": 1, "scheduler": "onecycle"})
    a, _ = _fit(train, tmp_path / "a", mixup=0.2, cutmix=0.2)
    b, _ = _fit(train, tmp_path / "b", mixup=0.2, cutmix=0.2)
    c, _ = _fit(train.model_copy(update={"seed": 1}), tmp_path / "c", mixup=0.2, cutmix=0.2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


class StopAfter(L.Callback):
    """Simulates a killed run: stops after ``epochs`` epochs of a longer schedule."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_resume_continues_at_the_right_epoch_and_matches(tmp_path: Path, cpu_train) -> None:
    train = cpu_train.model_copy(update={"epochs": 4, "scheduler": "onecycle", "optimizer": "sgd"})
    x, y = separable_images(96)
    xv, yv = separable_images(48, seed=1)

    def run(run_dir: Path, extra=(), ckpt=None):
        seed_everything(0)
        module = make_module(train, 6)
        trainer = build_trainer(train, run_dir, 4, callbacks_extra=extra)
        trainer.fit(module, loader(x, y), loader(xv, yv), ckpt_path=ckpt)
        return module, trainer

    whole, _ = run(tmp_path / "whole")
    run(tmp_path / "killed", extra=[StopAfter(2)])
    assert len(_rows(tmp_path / "killed")) == 2
    ckpt = find_resume_checkpoint(tmp_path / "killed")
    assert safe_load_checkpoint(ckpt)["epoch"] == 1
    resumed, trainer = run(tmp_path / "killed", ckpt=str(ckpt))
    assert [r["epoch"] for r in _rows(tmp_path / "killed")] == ["1", "2", "3", "4"]
    assert trainer.current_epoch == 4
    for key, value in whole.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[key].float(), atol=1e-6), key


def test_bf16_reaches_fp32_accuracy(tmp_path: Path, cpu_train) -> None:
    expected = "bf16-mixed" if cpu_has_native_bf16() else "32"
    assert resolve_precision("auto", "cpu") == expected
    results = {}
    for precision in ("32", "bf16-mixed"):
        train = cpu_train.model_copy(update={"precision": precision, "epochs": 3})
        _, trainer = _fit(train, tmp_path / precision)
        assert str(trainer.precision).startswith(precision.split("-")[0])
        results[precision] = float(_rows(tmp_path / precision)[-1]["val/accuracy"])
    assert results["bf16-mixed"] >= results["32"] - 0.05 and results["bf16-mixed"] > 0.9


def test_time_budget_ends_cleanly(tmp_path: Path, cpu_train) -> None:
    train = cpu_train.model_copy(update={"epochs": 500, "max_time": 1.5})
    _, trainer = _fit(train, tmp_path)
    assert 0 < trainer.current_epoch < 500
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert len(_rows(tmp_path)) >= 1
    leftovers = [p for p in (tmp_path / "checkpoints").iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_throughput_probe_estimates_and_warns(cpu_train, capsys) -> None:
    probe = ThroughputProbe(probe_batches=3, warn_after_s=0.0)
    x, y = separable_images(96)
    trainer = L.Trainer(
        max_epochs=1, callbacks=[probe], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(make_module(cpu_train, 6), loader(x, y))
    assert probe.estimate["epoch_s"] > 0 and probe.estimate["run_s"] >= probe.estimate["epoch_s"]
    captured = capsys.readouterr()
    assert "per epoch" in captured.out and "mode=frozen" in captured.err


def test_feature_batches_train_a_head(tmp_path: Path, cpu_train) -> None:
    """The frozen fast path: float (B, F) features, no transforms, same module."""
    from cnnlab.engine.losses import create_loss
    from cnnlab.engine.module import ClassifierModule

    g = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    feats = torch.randn(90, 16, generator=g) + torch.nn.functional.one_hot(y, 16).float() * 6
    train = cpu_train.model_copy(update={"lr": 0.1})
    module = ClassifierModule(torch.nn.Linear(16, 3), 3, train, 6, create_loss())
    trainer = build_trainer(train, tmp_path, 3)
    trainer.fit(module, loader(feats, y, shuffle=True), loader(feats, y))
    probs = torch.cat(trainer.predict(module, loader(feats, y)))
    assert probs.shape == (90, 3) and torch.allclose(probs.sum(1), torch.ones(90))
    assert (probs.argmax(1) == y).float().mean() > 0.9


DDP_SCRIPT = """
import sys
import torch
from torch.utils.data import DataLoader, TensorDataset
sys.path.insert(0, sys.argv[2])
from engine_helpers import CompareOldLogging, OldLoggingModule
from cnnlab.config import TrainConfig
from cnnlab.engine.losses import create_loss
from cnnlab.engine.trainer import build_trainer, seed_everything

train = TrainConfig(epochs=2, optimizer="adam", lr=5e-2, scheduler="cosine", precision="32",
                    accelerator="cpu", devices=2, strategy="ddp", channels_last="false")
seed_everything(0)
y = torch.arange(96) % 3
x = torch.randint(0, 80, (96, 3, 8, 8), dtype=torch.uint8)
for c in range(3):
    x[y == c, c] += 150
yv = y.clone()
yv[1::4] = (yv[1::4] + 1) % 3  # wrong labels on rank 1's half only (the sampler interleaves)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                          torch.nn.Flatten(), torch.nn.Linear(8, 3))
module = OldLoggingModule(net, 3, train, 3, create_loss())  # also logs the old way, to compare
compare = CompareOldLogging()
trainer = build_trainer(train, sys.argv[1], 2, enable_progress=False, callbacks_extra=[compare])
loader = DataLoader(TensorDataset(x, y), batch_size=16)
trainer.fit(module, loader, DataLoader(TensorDataset(x, yv), batch_size=16))
# one write per line: both ranks share the pipe, and print() writes the newline apart
sys.stdout.write(f"WORLD {trainer.world_size} {trainer.global_rank} {compare.checked}\\n")
sys.stdout.flush()
"""


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    """Two gloo processes through Lightning's ``ddp`` launcher, as a user's script would run.

    Each epoch's values are summed over both ranks: equal, on every rank, to what the old
    per-step logging (Lightning's ``sync_dist``, torchmetrics' sync) gave; rank 1's val half
    has wrong labels, so a rank's own tally would read differently.
    """
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(script), str(run_dir), str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    checked = "{'train': 2, 'val': 2}"
    assert f"WORLD 2 0 {checked}" in done.stdout and f"WORLD 2 1 {checked}" in done.stdout
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train/loss"]) < float(rows[0]["train/loss"])
    assert 0.0 <= float(rows[1]["val/macro_f1"]) <= 1.0
    assert 0.5 < float(rows[1]["val/accuracy"]) < 1.0  # both halves counted
    assert safe_load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 1


def test_cudnn_autotuning_is_asked_for_on_gpus_only(tmp_path: Path, cpu_train) -> None:
    """GPU runs search cuDNN's convolution algorithms once per shape (tests/gpu checks the
    flag after a real GPU run); a CPU trainer leaves the flag off."""
    from cnnlab.engine.trainer import cudnn_benchmark

    assert cudnn_benchmark("gpu") and cudnn_benchmark("cuda") and not cudnn_benchmark("cpu")
    torch.backends.cudnn.benchmark = True  # what an earlier GPU run in this process left
    build_trainer(cpu_train, tmp_path, 1)
    assert torch.backends.cudnn.benchmark is False
