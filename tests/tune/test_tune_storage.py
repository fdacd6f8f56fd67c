"""A tune's storage: the recorded one is reported from, a study shared by several tune
folders finishes in each, a lost server is one line, a bad one leaves no folder behind."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import optuna
import pytest
import yaml
from tests.conftest import _free_port
from tests.studies.conftest import cli, read_csv
from tests.tune.conftest import TINY, TINY_ARGS

import cnnlab
from cnnlab.schedule.storage import open_storage

FILES = ("trials.csv", "best.json", "best.yaml")


def _tune(data: Path, out: Path, url: str, trials: int = 2) -> cnnlab.Tuning:
    return cnnlab.tune(
        data, space="train", trials=trials, epochs=1, sampler="random", pruner="none",
        out=str(out), storage=url, study="shared", **TINY,
    )  # fmt: skip


def _snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FILES}


@pytest.mark.slow
def test_report_uses_the_recorded_storage_and_never_empties_the_results(small_folder, tmp_path):
    out, url = tmp_path / "tune", f"sqlite:///{tmp_path / 'elsewhere.db'}"
    _tune(small_folder, out, url)
    before = _snapshot(out)
    assert len(read_csv(out / "trials.csv")[1]) == 2

    again = cli("tune", "report", str(out))  # no --storage: tune.yaml's
    assert again.returncode == 0, again.stderr
    assert "2 complete" in again.stdout
    assert _snapshot(out) == before  # the same results, from the same storage
    assert not (out / "schedule.db").exists()  # no fresh, empty SQLite made beside it

    other = tmp_path / "other.db"
    refused = cli("tune", "report", str(out), "--storage", f"sqlite:///{other}")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: storage sqlite:///{other} holds no study 'shared' (see --storage)"
    )
    optuna.create_study(study_name="shared", storage=open_storage(f"sqlite:///{other}"))
    refused = cli("tune", "report", str(out), "--storage", f"sqlite:///{other}")
    assert refused.returncode == 2 and "holds no trial" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    settings = yaml.safe_load((out / "tune.yaml").read_text())
    settings["storage"] = "postgresql://me:***@127.0.0.1:5432/tunes"  # its password left out
    (out / "tune.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True))
    masked = cli("tune", "report", str(out))
    assert masked.returncode == 2
    assert "pass it again with --storage" in masked.stderr, masked.stderr
    assert _snapshot(out) == before  # never replaced by an empty table


def _set_worker_host(db: Path, host: str) -> None:
    """Make every trial look trained on another machine (Optuna lets no one edit a finished
    trial's attributes through its API)."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'worker'",
            (f'"{host}:4242"',),
        )


@pytest.mark.slow
def test_a_tune_sharing_a_study_finishes_when_the_best_trial_was_trained_elsewhere(
    small_folder, tmp_path
):
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    ta = _tune(small_folder, a, url)
    tb = _tune(small_folder, b, url)  # the budget is used: b trains nothing, and reports
    assert not (b / "trials").exists()
    assert (b / "split.csv").read_bytes() == (a / "split.csv").read_bytes()
    # same machine: the run folders in a's tune folder, by their absolute paths
    assert [r["run_dir"] for r in tb.trials] == [str(a.resolve() / r["run_dir"]) for r in ta.trials]
    assert tb.best["run_dir"] == str(a.resolve() / ta.best["run_dir"])
    assert yaml.safe_load((b / "best.yaml").read_text()) == yaml.safe_load(
        (a / "best.yaml").read_text()
    )
    assert (b / "tune.html").is_file()

    _set_worker_host(db, "gpu-2")  # another machine: its folders are not readable here
    report = cli("tune", "report", str(b))
    assert report.returncode == 0, report.stderr
    rows = read_csv(b / "trials.csv")[1]
    assert [r["run_dir"] for r in rows] == [
        f"gpu-2:{a.resolve() / r['run_dir']}" for r in ta.trials
    ]
    assert f"its run folder: gpu-2:{a.resolve()}" in report.stdout
    rebuilt = yaml.safe_load((b / "best.yaml").read_text())
    assert rebuilt["data"]["split_file"] == str((b / "split.csv").resolve())  # the same split
    for key, value in ta.best["params"].items():  # the values the trial trained with
        section, name = key.split(".")
        assert rebuilt[section][name] == value, key
    assert rebuilt["data"]["img_size"] == 16 and rebuilt["train"]["epochs"] == 1
    trained = yaml.safe_load((a / "best.yaml").read_text())
    differ = {f"{s}.{k}" for s in trained for k in trained[s] or {}
              if isinstance(trained[s], dict) and trained[s][k] != rebuilt[s][k]}  # fmt: skip
    # only what training decides from the data again: channels, a batch min_steps lowers
    assert differ <= {"data.split_file", "data.channels", "train.batch_size",
                      "train.freeze_bn_stats"}, differ  # fmt: skip
    assert "not readable here: rebuilt from its values" in (b / "best.yaml").read_text()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:pw0rd@127.0.0.1:{port}/tunes",  # nothing listens there
        "sqlite:///{tmp}/no/such/folder/tune.db",
    ],
)
def test_a_storage_that_cannot_be_reached_leaves_no_tune_folder(small_folder, tmp_path, url):
    url = url.format(port=_free_port(), tmp=tmp_path)
    data_before = sorted(small_folder.rglob("*"))
    out = tmp_path / "tune"
    failed = cli("tune", str(small_folder), "--out", str(out), "--storage", url, *TINY_ARGS)
    assert failed.returncode == 2
    assert failed.stderr.strip().startswith("error: storage "), failed.stderr
    assert "cannot connect" in failed.stderr and "pw0rd" not in failed.stderr
    assert not out.exists()
    out.mkdir()  # an empty folder given as --out stays empty
    failed = cli("tune", str(small_folder), "--out", str(out), "--storage", url, *TINY_ARGS)
    assert failed.returncode == 2 and list(out.iterdir()) == []
    assert sorted(small_folder.rglob("*")) == data_before


@pytest.mark.slow
def test_workers_end_the_log_with_the_final_count_not_a_new_bar_at_zero(small_folder, tmp_path):
    out = tmp_path / "tune"
    done = cli("tune", str(small_folder), "--space", "train", "--trials", "2", "--epochs", "1",
               "--pruner", "none", "--workers", "2", "--out", str(out), *TINY_ARGS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    bars = [ln for ln in done.stdout.splitlines() if re.match(r"tune\s", ln)]
    assert bars and " 2/2 " in bars[-1], done.stdout
    assert not any(re.search(r"\b0/2\b", ln) for ln in bars), done.stdout


@pytest.mark.slow
def test_a_storage_lost_mid_tune_is_one_line_and_the_same_command_goes_on(
    small_folder, tmp_path, own_postgres
):
    out = tmp_path / "tune"
    args = ["tune", str(small_folder), "--space", "train", "--trials", "3", "--epochs", "6",
            "--pruner", "median", "--workers", "2", "--out", str(out),
            "--storage", own_postgres.url, "--study", "down", *TINY_ARGS]  # fmt: skip
    code, stdout, stderr = own_postgres.stop_while_training(args, out / "trials")
    assert code == 2, stdout + stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert errors == [stderr.strip().splitlines()[-1]], stderr
    assert errors[0].startswith(f"error: storage {own_postgres.url}: lost the connection (")
    assert errors[0].endswith("run the same command to continue"), errors[0]
    assert len(stderr.splitlines()) <= 2, stderr  # a warning that it does not answer, at most

    own_postgres.start()
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    rows = read_csv(out / "trials.csv")[1]
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows) == 3
