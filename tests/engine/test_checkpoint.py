"""Atomic saves, weights-only loads, resume fallback and safetensors round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab import atomic
from cnnlab.engine.checkpoint import (
    AtomicCheckpointIO,
    find_resume_checkpoint,
    safe_load_checkpoint,
)
from cnnlab.errors import CheckpointError
from cnnlab.models.state import load_weights, save_weights


class ExplodesOnSave:
    def __reduce__(self):
        raise RuntimeError("disk full")


class WritesMarker:
    """A pickle payload that would create a file when unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _state(step: int) -> dict:
    """What Lightning saves, in miniature: weights and the state a resume needs."""
    return {
        "epoch": step, "global_step": 10 * step, "state_dict": {"w": torch.full((3,), float(step))},
        "optimizer_states": [], "loops": {}, "callbacks": {},
    }  # fmt: skip


def _ckpt_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    return folder


def test_crash_during_save_keeps_previous_last_and_no_temp_files(tmp_path: Path) -> None:
    folder = _ckpt_dir(tmp_path)
    io = AtomicCheckpointIO()
    io.save_checkpoint(_state(1), folder / "last.ckpt")
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"epoch": 2, "bad": ExplodesOnSave()}, folder / "last.ckpt")
    assert safe_load_checkpoint(folder / "last.ckpt")["epoch"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]


def test_last_is_rotated_into_last_prev(tmp_path: Path) -> None:
    folder = _ckpt_dir(tmp_path)
    io = AtomicCheckpointIO()
    for step in (1, 2, 3):
        io.save_checkpoint(_state(step), folder / "last.ckpt")
    assert io.load_checkpoint(folder / "last.ckpt")["epoch"] == 3
    assert safe_load_checkpoint(folder / "last-prev.ckpt")["epoch"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["last-prev.ckpt", "last.ckpt"]
    # Two files, not two names of one: damage to last cannot reach its predecessor.
    assert (folder / "last.ckpt").stat().st_ino != (folder / "last-prev.ckpt").stat().st_ino


def test_a_kill_before_the_new_last_lands_leaves_the_predecessor_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moment between writing the new ``last`` and renaming it into place (its fsync).

    With a hard-linked ``last-prev`` this left ``last`` and ``last-prev`` as one file, and a
    damaged ``last`` took the predecessor with it (seen as a flaky kill -9 resume test).
    """
    folder = _ckpt_dir(tmp_path)
    io = AtomicCheckpointIO()
    io.save_checkpoint(_state(1), folder / "last.ckpt")
    io.save_checkpoint(_state(2), folder / "last.ckpt")

    def killed(path: object) -> None:
        raise OSError(5, "killed during fsync")

    monkeypatch.setattr(atomic, "fsync_file", killed)
    with pytest.raises(OSError, match="killed"):
        io.save_checkpoint(_state(3), folder / "last.ckpt")
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["last-prev.ckpt"]  # no temp file
    found = find_resume_checkpoint(tmp_path)
    assert found == folder / "last-prev.ckpt" and safe_load_checkpoint(found)["epoch"] == 2
    io.save_checkpoint(_state(3), folder / "last.ckpt")  # the next save carries on
    assert safe_load_checkpoint(folder / "last.ckpt")["epoch"] == 3


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_or_empty_checkpoint_is_incomplete(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "x.ckpt"
    torch.save(_state(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match=f"checkpoint incomplete: {path}"):
        safe_load_checkpoint(path)


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"epoch": 1, "payload": WritesMarker(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        safe_load_checkpoint(path)
    assert not marker.exists()
    folder = _ckpt_dir(tmp_path)
    (folder / "last.ckpt").write_bytes(path.read_bytes())
    torch.save(_state(0), folder / "last-prev.ckpt")
    with pytest.raises(CheckpointError, match="refused"):  # never skipped as "damaged"
        find_resume_checkpoint(tmp_path)
    assert not marker.exists()


def test_resume_falls_back_to_previous_with_warning(tmp_path: Path, capsys) -> None:
    folder = _ckpt_dir(tmp_path)
    assert find_resume_checkpoint(tmp_path) is None
    io = AtomicCheckpointIO()
    io.save_checkpoint(_state(1), folder / "last.ckpt")
    io.save_checkpoint(_state(2), folder / "last.ckpt")
    assert find_resume_checkpoint(tmp_path) == folder / "last.ckpt"
    last = folder / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100])
    assert find_resume_checkpoint(tmp_path) == folder / "last-prev.ckpt"
    assert "checkpoint incomplete" in capsys.readouterr().err
    (folder / "last-prev.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_resume_checkpoint(tmp_path)


def test_safetensors_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    a[1].running_mean.normal_()
    a[1].num_batches_tracked.fill_(7)
    save_weights(a, tmp_path / "m.safetensors")
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    load_weights(b, tmp_path / "m.safetensors")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_weight_mismatch_names_the_keys(tmp_path: Path) -> None:
    save_weights(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"1\.weight \(2, 3\) vs model \(5, 3\)"):
        load_weights(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5)), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys: 2\.bias, 2\.weight"):
        load_weights(
            nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), nn.Linear(2, 2)),
            tmp_path / "m.safetensors",
        )
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(CheckpointError, match="checkpoint incomplete"):
        load_weights(nn.Linear(4, 3), tmp_path / "bad.safetensors")


MINIZ = (
    "PytorchStreamReader failed reading zip archive: failed finding central directory. This is "
    "an internal miniz error. If you see this, the file is probably truncated"
)


def test_a_damaged_last_without_predecessor_resumes_from_a_complete_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _ckpt_dir(tmp_path)
    AtomicCheckpointIO().save_checkpoint(_state(1), folder / "best.ckpt")
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 cut here")
    assert find_resume_checkpoint(tmp_path) == folder / "best.ckpt"
    err = capsys.readouterr().err
    assert "resuming from the best epoch's checkpoint, which holds the full training state" in err
    assert "best.ckpt (epoch 2)" in err
    # a newer best wins over last-prev; on the same epoch, last-prev does
    AtomicCheckpointIO().save_checkpoint(_state(0), folder / "last-prev.ckpt")
    assert find_resume_checkpoint(tmp_path) == folder / "best.ckpt"
    AtomicCheckpointIO().save_checkpoint(_state(1), folder / "last-prev.ckpt")
    assert find_resume_checkpoint(tmp_path) == folder / "last-prev.ckpt"


def test_a_best_of_weights_only_is_not_resumed_from_and_the_reason_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _ckpt_dir(tmp_path)
    torch.save({"epoch": 1, "state_dict": {}}, folder / "best.ckpt")  # save_weights_only
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 cut here")

    def truncated(*args: object, **kwargs: object) -> None:
        raise RuntimeError(MINIZ)

    monkeypatch.setattr(torch, "load", truncated)
    with pytest.raises(CheckpointError) as caught:
        find_resume_checkpoint(tmp_path)
    assert str(caught.value) == (
        f"no complete checkpoint in {folder} (checkpoint incomplete: {folder / 'last.ckpt'} "
        "(PytorchStreamReader failed reading zip archive: failed finding central directory); "
        f"checkpoint incomplete: {folder / 'best.ckpt'} (PytorchStreamReader failed reading "
        "zip archive: failed finding central directory)); start a new run instead"
    )
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"best.ckpt holds no training state to resume"):
        find_resume_checkpoint(tmp_path)


def test_a_long_reason_is_cut_between_words() -> None:
    from cnnlab.engine.checkpoint import _short

    text = "words " * 60
    cut = _short(text, limit=50)
    assert cut.endswith(" …") and set(cut[:-2].split()) == {"words"} and len(cut) <= 52
    assert (
        _short(MINIZ)
        == "PytorchStreamReader failed reading zip archive: failed finding central directory"
    )
