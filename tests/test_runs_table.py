"""Issue 10 item 15: `cnnlab runs` fits an 80-column terminal, one line per run, and sorts.

The runs are copies of one real trained run under long names (the way default names look:
model, mode, time stamp), each with its own test accuracy so the sort order is known.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlab

NAMES = {  # name -> test accuracy written into its summary
    "efficientnet_lite0-finetune-20260101-120000-lr3e-4-seed1": 0.80,
    "efficientnet_lite0-finetune-20260101-120000-lr3e-4-seed2": 0.95,
    "resnet18-partial2-20260102-093000-with-strong-augmentation": 0.70,
}


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_folder

    base = tmp_path_factory.mktemp("runs-table")
    data = write_folder(base / "data", classes=3, per_class=12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        run = cnnlab.train(
            str(data), model__cnn__filters=[8, 16], epochs=1, runs_dir=str(base / "runs")
        )
    assert run is not None
    folder = base / "runs"
    for name, accuracy in NAMES.items():
        copy = folder / name
        shutil.copytree(run.path, copy)
        summary = json.loads((copy / "summary.json").read_text(encoding="utf-8"))
        summary["metrics"]["test"]["accuracy"] = accuracy
        (copy / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_runs_fit_80_columns_one_line_each(runs: Path) -> None:
    out = cli("runs", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), out.stdout
    for name in NAMES:
        # the start and the end of each name (model and distinguishing suffix) stay visible
        hits = [ln for ln in lines if name[:8] in ln and name[-5:] in ln]
        assert len(hits) == 1, (name, out.stdout)
        assert "…" in hits[0]
    wide = cli("runs", "--runs-dir", str(runs), "--wide")
    assert all(name in wide.stdout for name in NAMES)


@pytest.mark.slow
def test_runs_sort_by_a_metric_and_json_has_full_names(runs: Path) -> None:
    out = cli("runs", "--runs-dir", str(runs), "--sort", "test_accuracy", "--json")
    assert out.returncode == 0, out.stderr
    listed = [r["name"] for r in json.loads(out.stdout) if r["name"] in NAMES]
    assert listed == sorted(NAMES, key=NAMES.get, reverse=True)
    table = cli("runs", "--runs-dir", str(runs), "--sort", "test_accuracy").stdout
    tails = [next(i for i, ln in enumerate(table.splitlines()) if n[-5:] in ln) for n in listed]
    assert tails == sorted(tails)  # the table lists them in the same order
    bad = cli("runs", "--runs-dir", str(runs), "--sort", "test_acc")
    assert bad.returncode == 2 and "did you mean 'test_accuracy'" in bad.stderr


@pytest.mark.slow
def test_a_killed_run_shows_what_is_known_and_how_to_resume(runs: Path, tmp_path: Path) -> None:
    import yaml

    folder = tmp_path / "my runs"
    killed = Path(shutil.copytree(runs / next(iter(NAMES)), folder / "killed"))
    for name in ("summary.json", "model.safetensors", "model.json", "report.html"):
        (killed / name).unlink()
    config = yaml.safe_load((killed / "config.yaml").read_text(encoding="utf-8"))
    config["train"]["epochs"] = 5  # killed after 1 of 5 epochs
    (killed / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    val_acc = float(next(csv.DictReader((killed / "metrics.csv").open()))["val/accuracy"])

    out = cli("runs", "--runs-dir", str(folder))
    assert out.returncode == 0, out.stderr
    [row] = [ln for ln in out.stdout.splitlines() if ln.startswith(" killed ")]
    assert row.split()[:5] == ["killed", "cnn", "auto", "1/5", f"{val_acc:.3f}*"], row
    assert "(incomplete)" not in out.stdout
    assert f"  cnnlab train --resume '{killed}'" in out.stdout.splitlines()

    wide = cli("runs", "--runs-dir", str(folder), "--wide")
    header = " ".join(wide.stdout.splitlines()[2:4])
    assert all(word in header for word in ("data", "lr", "batch", "best", "created")), header
    [row] = [ln for ln in wide.stdout.splitlines() if ln.startswith(" killed ")]
    assert row.split()[9:12] == ["data", "auto", str(config["train"]["batch_size"])], row

    [listed] = json.loads(cli("runs", "--runs-dir", str(folder), "--json").stdout)
    assert listed["complete"] is False and listed["val_accuracy"] is None  # final metrics only
    assert (listed["epochs_run"], listed["epochs_planned"]) == (1, 5)
    assert listed["last_val_accuracy"] == pytest.approx(val_acc)


@pytest.mark.slow
def test_wide_shows_losses_and_parameter_counts_and_dashes_what_old_runs_lack(
    runs: Path, tmp_path: Path
) -> None:
    """Seed report 003 compares runs by parameter count and by train/val/test loss."""
    folder = tmp_path / "runs"
    frozen = Path(shutil.copytree(runs / next(iter(NAMES)), folder / "frozen"))
    summary = json.loads((frozen / "summary.json").read_text(encoding="utf-8"))
    summary["params"]["trainable"] = 51  # as a frozen backbone's head-only run records it
    summary["metrics"]["test"]["log_loss"] = 0.25
    (frozen / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    old = Path(shutil.copytree(frozen, folder / "old"))
    legacy = dict(summary, metrics={s: {k: v for k, v in m.items() if k != "log_loss"}
                                    for s, m in summary["metrics"].items()})  # fmt: skip
    del legacy["params"]  # a summary written before these were recorded
    (old / "summary.json").write_text(json.dumps(legacy), encoding="utf-8")

    wide = cli("runs", "--runs-dir", str(folder), "--wide")
    assert wide.returncode == 0, wide.stderr
    header = " ".join(wide.stdout.splitlines()[2:4])
    assert all(word in header for word in ("loss", "params", "trained")), header
    [row] = [ln.split() for ln in wide.stdout.splitlines() if ln.startswith(" frozen ")]
    val_loss = summary["metrics"]["val"]["log_loss"]
    total = summary["params"]["total"]
    assert row[13:17] == [f"{val_loss:.4f}", "0.2500", f"{total:,}", "51"], row
    [row] = [ln.split() for ln in wide.stdout.splitlines() if ln.startswith(" old ")]
    assert row[13:17] == ["-", "-", "-", "-"], row
    narrow = cli("runs", "--runs-dir", str(folder)).stdout.splitlines()
    top = next(i for i, ln in enumerate(narrow) if "time" in ln.split())  # header's first line
    header = " ".join(narrow[top : top + 2])
    assert "(s)" in header and "loss" not in header and "params" not in header  # unchanged

    listed = json.loads(cli("runs", "--runs-dir", str(folder), "--json").stdout)
    by_name = {r["name"]: r for r in listed}
    assert by_name["frozen"]["trainable_params"] == 51 and by_name["frozen"]["params"] == total
    assert by_name["frozen"]["val_log_loss"] == pytest.approx(val_loss)
    assert by_name["old"]["params"] is None and by_name["old"]["test_log_loss"] is None
    order = cli("runs", "--runs-dir", str(folder), "--sort", "test_log_loss", "--json").stdout
    assert [r["name"] for r in json.loads(order)] == ["frozen", "old"]  # lowest first


@pytest.mark.slow
def test_damaged_runs_are_named_and_never_sent_to_a_resume_that_refuses(
    runs: Path, tmp_path: Path
) -> None:
    """A truncated summary.json was listed as unfinished with `train --resume` advice, which
    then failed ("not valid JSON"); a finished run whose weights were deleted was listed as
    complete. Both are now listed as damaged, with the file, and no resume advice."""
    folder = tmp_path / "runs"
    source = runs / next(iter(NAMES))
    cut = Path(shutil.copytree(source, folder / "cut-summary"))
    (cut / "summary.json").write_text('{"metrics": {"val": ', encoding="utf-8")
    gone = Path(shutil.copytree(source, folder / "no-weights"))
    (gone / "model.safetensors").unlink()
    (gone / "metrics.csv").unlink()
    shutil.copytree(source, folder / "fine")

    out = cli("runs", "--runs-dir", str(folder), columns=200)
    assert out.returncode == 0, out.stderr
    assert "--resume" not in out.stdout and "did not finish" not in out.stdout
    lines = out.stdout.splitlines()
    assert "2 run(s) damaged (neither usable nor resumable; train again):" in lines
    assert "  cut-summary: summary.json cannot be read" in lines
    assert "  no-weights: model.safetensors missing" in lines
    refused = cli("train", "--resume", str(cut))  # what the old advice led to
    assert refused.returncode != 0 and "not valid JSON" in refused.stderr

    listed = {r["name"]: r for r in json.loads(cli("runs", "--runs-dir", str(folder),
                                                   "--json").stdout)}  # fmt: skip
    assert {n: (r["complete"], r["problem"]) for n, r in listed.items()} == {
        "cut-summary": (False, "summary.json cannot be read"),
        "no-weights": (False, "model.safetensors missing"),
        "fine": (True, None),
    }
