"""Issue 10 item 13: every user mistake is one line on stderr and exit code 2.

Typos in the trainer settings, output folders that cannot be written (a file in the way, a
read-only file system) and a disk that fills up while a run is written. Read-only and full
file systems are real: small tmpfs mounts (we run as root, where chmod stops nothing).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import folder_digest
from tests.evaluation.conftest import build_run

CNNLAB = [sys.executable, "-m", "cnnlab"]
SMALL = ("model.cnn.filters=[8,16]", "--epochs", "2")


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [*CNNLAB, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (exit code 2, no traceback)."""
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    return lines[0]


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real, small file system mounted at ``where`` for the duration of the block."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.fail("these tests mount a small tmpfs: run them as root (or with CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("train.monitor=val/acc", "val/accuracy"),
        ("train.accelerator=gpuu", "gpu"),
        ("train.devices=atuo", "auto"),
        ("train.strategy=dpp", "ddp"),
    ],
)
def test_trainer_setting_typos_fail_before_any_work(
    override: str, suggestion: str, tiny_folder: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    out = cli("train", str(tiny_folder), override, "--runs-dir", str(runs))
    line = one_error_line(out)
    assert override.split("=")[0] in line and f"did you mean '{suggestion}'" in line
    assert not runs.exists() and "data:" not in out.stdout  # refused before the scan


def test_runs_dir_that_cannot_be_written_is_refused_before_the_scan(
    tiny_folder: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = cli("train", str(tiny_folder), "--runs-dir", str(blocker / "runs"))
    assert "runs_dir" in one_error_line(out) and "data:" not in out.stdout
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as ro:
        out = cli("train", str(tiny_folder), "--runs-dir", str(ro / "runs"))
        assert "not writable" in one_error_line(out) and "data:" not in out.stdout


@pytest.mark.slow
def test_out_paths_that_cannot_be_written_are_refused(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data = str(tmp_path / "data")
    image = str(next((tmp_path / "data" / "class_0").iterdir()))
    for command in (
        ("predict", str(run), image, "--out", str(blocker / "p.csv")),
        ("eval", str(run), "--out", str(blocker / "ev")),
        ("export", str(run), "--out", str(blocker / "m.onnx")),
        ("lr-find", data, "--out", str(blocker / "lr.png")),
    ):
        assert "--out" in one_error_line(cli(*command)), command
    assert not (tmp_path / "data" / "lr.png").exists()


@pytest.mark.slow
def test_an_existing_out_file_is_kept_unless_overwrite_is_given(tmp_path: Path) -> None:
    """predict --out replaced an earlier predictions file without a word (so did export --out
    and lr-find's plot); now each refuses, before any work, and --overwrite replaces it."""
    run = build_run(tmp_path)
    image = str(next((tmp_path / "data" / "class_0").iterdir()))
    mine = tmp_path / "mine"
    mine.mkdir()
    earlier = {name: mine / name for name in ("last week's predictions.csv", "m.onnx", "lr.png")}
    for path in earlier.values():
        path.write_text(f"the user's own {path.name}\n", encoding="utf-8")
    refused = {
        "predict": (
            "predict",
            str(run),
            image,
            "--out",
            str(earlier["last week's predictions.csv"]),
        ),
        "export": ("export", str(run), "--out", str(earlier["m.onnx"])),
        "lr-find": ("lr-find", str(tmp_path / "data"), "--out", str(earlier["lr.png"])),
    }
    for name, command in refused.items():
        out = cli(*command)
        line = one_error_line(out)
        assert str(mine) in line and "exists; pass --overwrite" in line, name
        assert out.stdout == "", name  # before the model loads or the scan starts
    assert all(p.read_text(encoding="utf-8").startswith("the user's own") for p in earlier.values())

    for name in ("predict", "export"):
        out = cli(*refused[name], "--overwrite")
        assert out.returncode == 0, out.stdout + out.stderr
    table = earlier["last week's predictions.csv"].read_text(encoding="utf-8")
    assert table.startswith("path,label,prob") and image in table
    assert earlier["m.onnx"].read_bytes() != b"the user's own m.onnx\n"
    left = sorted(p.name for p in mine.iterdir())  # no temp file; export.json records m.onnx
    assert left == sorted([*earlier, "export.json"])


@pytest.mark.slow
@pytest.mark.parametrize("size", ["48k", "600k"])  # full at the first files / during training
def test_a_full_disk_is_one_line_naming_the_file(
    size: str, tiny_folder: Path, tmp_path: Path
) -> None:
    before = folder_digest(tiny_folder)
    with tmpfs(tmp_path / "small", size) as small:
        out = cli("train", str(tiny_folder), *SMALL, "--runs-dir", str(small / "runs"))
        line = one_error_line(out)
        assert "No space left on device" in line and str(small) in line
    assert folder_digest(tiny_folder) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, words",
    [
        (["predict", "no-run", "x.png", "--top-k", "0"], "'--top-k' / '-k'"),
        (["data", "demo", "cats", "out"], "unknown demo 'cats'"),
        (["train", "data", "--epochs", "x"], "'--epochs'"),
        (["predict"], "Missing argument"),
        (["trian"], "No such command 'trian'. Did you mean 'train'"),
        (["--bogus"], "No such option: --bogus"),
        (["cache", "bogus"], "No such command 'bogus'"),
    ],
)
def test_a_bad_argument_is_one_error_line_not_a_usage_box(
    args: list[str], words: str, tmp_path: Path
) -> None:
    """docs/training.md: every user mistake is one `error:` line and exit code 2. Values
    Typer itself rejects printed a 4-line box (usage, hint, framed message) instead."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    out = subprocess.run(
        [*CNNLAB, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    line = one_error_line(out)
    assert words in line and line.endswith("--help)"), line
    assert not (tmp_path / "out").exists()


def test_help_and_a_bare_group_still_show_the_help() -> None:
    assert cli("--help").returncode == 0 and "Usage" in cli("--help").stdout
    bare = cli("data")  # no subcommand: its help, as before (exit 2, click's convention)
    assert bare.returncode == 2 and "Usage" in bare.stdout + bare.stderr
    assert "error:" not in bare.stderr


def test_predict_refuses_k_below_1_and_lists_every_class_for_a_larger_k(tmp_path: Path) -> None:
    import csv

    from cnnlab.errors import ConfigError
    from cnnlab.predict import Predictor

    run = build_run(tmp_path)
    image = str(next((tmp_path / "data" / "class_0").iterdir()))
    for k in ("0", "-1"):
        out = cli("predict", str(run), image, "-k", k)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "greater than or equal to 1" in out.stderr and "--top-k" in out.stderr, k
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1"):
        Predictor(run).predict(image, top_k=0)
    table = tmp_path / "p.csv"
    out = cli("predict", str(run), image, "-k", "10", "--out", str(table))  # 3 classes
    assert out.returncode == 0, out.stdout + out.stderr
    with table.open(newline="", encoding="utf-8") as fh:
        assert len(next(csv.DictReader(fh))["top_k_labels"].split(";")) == 3


@pytest.mark.slow
def test_predict_fails_when_nothing_was_predicted(tmp_path: Path) -> None:
    """A mistyped path must not look like success; one good file among bad ones still is."""
    from tests.evaluation.conftest import add_bad_files

    run = build_run(tmp_path)
    image = str(next((tmp_path / "data" / "class_0").iterdir()))
    missing = str(tmp_path / "nonexist.jpg")
    bad = [str(p) for p in add_bad_files(tmp_path / "junk")]
    (tmp_path / "empty").mkdir()
    for paths in ([missing], bad, [str(tmp_path / "empty")]):
        out = cli("predict", str(run), *paths)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "nothing was predicted" in out.stderr and "Traceback" not in out.stderr
    out = cli("predict", str(run), image, missing)  # one good file: the bad one is listed
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 of 2 files could not be read" in out.stderr


def test_eval_split_is_checked_before_any_work(tmp_path: Path) -> None:
    """``--split tset`` evaluated every image of a split folder lacking it; now one line."""
    run = build_run(tmp_path)
    line = one_error_line(cli("eval", str(run), "--split", "tset"))
    assert "unknown split 'tset'; use one of test, val, train" in line
    assert not list(run.glob("eval-*"))


def test_eval_on_a_manifest_with_bad_rows_is_one_line(tmp_path: Path) -> None:
    """eval --data LABELS.csv reads the manifest as train does: its bad rows are one error
    line naming each, before anything is written; a good manifest is evaluated."""
    run = build_run(tmp_path)
    data = tmp_path / "data"
    before = folder_digest(data)
    bad = data / "labels.csv"
    bad.write_text(
        "path,label\nclass_0/img_000.png,class_0\nclass_0/img_001.png,\n../x.png,class_0\n",
        encoding="utf-8",
    )
    line = one_error_line(cli("eval", str(run), "--data", str(bad)))
    assert "labels.csv: 2 problems stop the evaluation" in line
    assert "line 3: empty path or label" in line and "line 4: '../x.png' is outside" in line
    assert not list(run.glob("eval-*"))
    bad.write_text("path,label,split\nclass_0/img_000.png,class_0,test\n", encoding="utf-8")
    line = one_error_line(cli("eval", str(run), "--data", str(bad), "--split", "val"))
    assert "no rows of split 'val'; it has test: choose one with --split" in line
    done = cli("eval", str(run), "--data", str(bad))
    assert done.returncode == 0, done.stderr
    assert "on 1 images" in done.stdout and (run / "eval-labels-test" / "report.html").is_file()
    bad.unlink()
    assert folder_digest(data) == before
    # a manifest outside its dataset (clean.csv's root column): no --out inside that root
    from tests.conftest import write_folder

    from cnnlab.data.issues_index import record_issues
    from cnnlab.data.scan import scan_dataset

    other = write_folder(tmp_path / "new", classes=3, per_class=2)
    record_issues(scan_dataset(other, progress=False), tmp_path / "issues", {})
    clean = tmp_path / "lists" / "clean.csv"
    clean.parent.mkdir()
    clean.write_text("path,label,root\nclass_0/img_000.png,class_0,../new\n", encoding="utf-8")
    before = folder_digest(other)
    line = one_error_line(cli("eval", str(run), "--data", str(clean), "--out", str(other / "ev")))
    assert "inside the dataset folder" in line and folder_digest(other) == before


@pytest.mark.slow
def test_commands_on_a_run_never_write_into_the_dataset(tmp_path: Path) -> None:
    """RELIABILITY.md: the run's dataset (and eval's --data) is read-only to cnnlab; export
    and explain wrote model.onnx or heatmaps into a class folder, which the next scan counted
    as images of that class."""
    from tests.conftest import write_folder

    run = build_run(tmp_path)
    data = tmp_path / "data"
    other = write_folder(tmp_path / "new", classes=3, per_class=4)
    before = {folder: folder_digest(folder) for folder in (data, other)}
    image = str(next((data / "class_0").iterdir()))
    for command in (
        ("predict", str(run), image, "--out", str(data / "class_0" / "p.csv")),
        ("eval", str(run), "--out", str(data / "ev")),
        ("eval", str(run), "--data", str(other), "--out", str(other / "ev")),
        ("export", str(run), "--out", str(data / "class_0" / "model.onnx")),
        ("explain", str(run), image, "--out", str(data / "expl")),
    ):
        assert "inside the dataset folder" in one_error_line(cli(*command)), command
    assert {folder: folder_digest(folder) for folder in (data, other)} == before
    assert not (run / "model.onnx").exists() and not (run / "explain").exists()
