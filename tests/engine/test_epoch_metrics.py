"""Epoch tallies give the numbers the per-step logging gave: torchmetrics' accuracy and macro
F1 and Lightning's batch-weighted means, bit for bit, in a unit check and in real fits."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from engine_helpers import (
    CompareOldLogging,
    Normalise,
    OldLoggingModule,
    loader,
    separable_images,
    tiny_net,
)
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from cnnlab.engine.epoch_metrics import EpochTally, epoch_values
from cnnlab.engine.losses import create_loss
from cnnlab.engine.trainer import build_trainer, seed_everything


def _batches(num_classes: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, labels) batches: class 4 never a target nor a prediction, class 3 predicted
    but never a target, one batch of a single sample, ties in the logits."""
    g = torch.Generator().manual_seed(0)
    out = []
    for size in (16, 7, 1, 16):
        logits = torch.randn(size, num_classes, generator=g)
        logits[:, 4] = -1e4
        y = torch.randint(0, 3, (size,), generator=g)
        out.append((logits, y))
    out[1][0][0] = 0.0  # a row of ties: argmax takes the first, as torchmetrics does
    return out


def test_tally_matches_torchmetrics_with_an_absent_class_and_a_batch_of_one() -> None:
    batches = _batches()
    tally = EpochTally(5)
    acc = MulticlassAccuracy(num_classes=5, average="micro")
    f1 = MulticlassF1Score(num_classes=5, average="macro")
    for logits, y in batches:
        tally.update(torch.tensor(0.5), logits, y, lr=0.1)
        acc.update(logits, y)
        f1.update(logits, y)
    values = epoch_values(*tally.totals())
    assert torch.equal(values["accuracy"], acc.compute())
    assert torch.equal(values["macro_f1"], f1.compute())
    # the absent class is left out of the mean, not averaged in as a zero
    assert not torch.equal(values["macro_f1"], f1.compute() * 4 / 5)
    assert values["loss"].item() == 0.5 and abs(values["lr"].item() - 0.1) < 1e-7


def test_an_empty_tally_is_logged_as_nothing() -> None:
    tally = EpochTally(3)
    assert tally.empty
    tally.update(torch.tensor(1.0), torch.randn(2, 3), torch.tensor([0, 1]))
    tally.reset()
    assert tally.empty


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_fit_logs_what_the_per_step_logging_logged(tmp_path: Path, cpu_train) -> None:
    """One real fit carries both paths (OldLoggingModule logs the old way under old/): every
    epoch value the monitors see is equal, and metrics.csv holds the old values.

    Four classes with class 3 never a target and never predicted, mixup on (accuracy stays
    against the hard labels), batches of one at the end of both loaders, a scheduler so the
    lr changes within an epoch.
    """
    train = cpu_train.model_copy(update={"epochs": 3, "scheduler": "onecycle"})
    seed_everything(0)
    x, y = separable_images(97)  # 6 x 16 + 1
    xv, yv = separable_images(49, seed=1)
    yv[1::4] = (yv[1::4] + 1) % 3  # some val labels wrong, so val accuracy is not 1
    net = tiny_net(4)
    with torch.no_grad():
        net[-1].bias[3] = -1e4  # class 3 is never predicted
    module = OldLoggingModule(
        net, 4, train, 7, create_loss("ce"), train_transform=Normalise(),
        eval_transform=Normalise(), mixup=0.2,
    )  # fmt: skip
    compare = CompareOldLogging()
    trainer = build_trainer(train, tmp_path, 3, callbacks_extra=[compare])
    trainer.fit(module, loader(x, y, shuffle=True), loader(xv, yv))
    assert compare.checked == {"train": 3, "val": 3}
    rows = _rows(tmp_path)
    assert len(rows) == 3
    for row, old in zip(rows, compare.history, strict=True):
        assert {k: row[k] for k in old} == {k: f"{v:.6g}" for k, v in old.items()}
    assert 0.5 < float(rows[-1]["val/accuracy"]) < 1.0
    assert len({row["lr"] for row in rows}) == 3
