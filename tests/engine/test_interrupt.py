"""Ctrl-C and SIGTERM during training, through a real ``cnnlab train`` process and in parts.

Lightning catches the interrupt inside ``Trainer.fit`` and exits the process itself (1 for
Ctrl-C, 0 for SIGTERM), which hid it from cnnlab: no message, a FAILED MLflow run. These
tests send the real signal and check what the user sees, what the run folder keeps and
what the tracking store says.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from tests.conftest import write_folder

from cnnlab.engine.checkpoint import safe_load_checkpoint
from cnnlab.engine.interrupt import InterruptWatch, fit_or_raise, interrupts_held
from cnnlab.errors import Interrupted
from cnnlab.schedule.storage import open_storage, storage_url
from cnnlab.schedule.worker import run_worker

pytestmark = pytest.mark.usefixtures("ctrl_c_raises")


TINY = ("model.cnn.filters=[8,16]", "train.batch_size=4")


def _train(data: Path, runs: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    # a shell started without job control ignores SIGINT in its children: restore it
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", str(data), *TINY, "--runs-dir", str(runs),
         "--name", "stopped", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _epochs_written(run: Path) -> int:
    metrics = run / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "word"), [(signal.SIGINT, "interrupted"),
                                              (signal.SIGTERM, "terminated")])  # fmt: skip
def test_a_signal_during_train_exits_128_plus_n_keeps_the_run_and_logs_it_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, word: str
) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=20)
    runs = tmp_path / "runs"
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))  # one lock folder for both
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}  # tracking on
    env.update(COLUMNS="200", NO_COLOR="1")
    proc = _train(data, runs, env, "--epochs", "30")
    deadline = time.monotonic() + 300
    while proc.poll() is None and _epochs_written(runs / "stopped") < 2:
        assert time.monotonic() < deadline, "no second epoch after 300 s"
        time.sleep(0.1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, out + err
    assert "Traceback" not in err, err
    ckpt = safe_load_checkpoint(runs / "stopped" / "checkpoints" / "last.ckpt")
    assert 1 <= ckpt["epoch"] + 1 < 30  # a complete epoch, not the end of the run
    assert err.strip().splitlines()[-1] == (
        f"{word}: {runs / 'stopped'} keeps its checkpoint of epoch {ckpt['epoch'] + 1}; "
        f"continue with: cnnlab train --resume {runs / 'stopped'}"
    )
    assert not (runs / "stopped" / "summary.json").exists()
    assert _tracked_status(runs) == "KILLED"
    if signum == signal.SIGINT:  # the run goes on from there
        again = subprocess.run(
            [sys.executable, "-m", "cnnlab", "train", "--resume", str(runs / "stopped"),
             "--epochs", str(ckpt["epoch"] + 2)],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert _epochs_written(runs / "stopped") == ckpt["epoch"] + 2


def _tracked_status(runs: Path, timeout: float = 300) -> str | None:
    """The run's MLflow status once its tracking process, which outlives the command, has
    ended it. The store is opened under the lock the tracker creates it under (opening a
    store migrates a new one: two at once break it)."""
    from tests.track.track_helpers import runs_of

    from cnnlab.track.target import default_uri, locked

    status, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (runs / "mlflow.db").is_file():
            with locked(runs / "mlflow.db"):
                found = runs_of(default_uri(runs), must_exist=False)
            status = found[0].info.status if found else None
            if status not in (None, "RUNNING"):
                return status
        time.sleep(1)
    return status


class _Trainer:
    """Stands in for ``trainer.fit``: interrupted as each Lightning version ends a fit."""

    def __init__(self, watch: InterruptWatch, ending: str) -> None:
        self.watch, self.ending = watch, ending

    def fit(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what Lightning does on the first Ctrl-C
        if self.ending == "raise":  # an interrupt outside Lightning's guard
            raise KeyboardInterrupt
        self.watch.on_exception(None, None, KeyboardInterrupt())  # type: ignore[arg-type]
        if self.ending == "exit":  # Lightning >= 2.4: sys.exit(1) after its shutdown
            raise SystemExit(1)
        # Lightning < 2.4: fit returns as if it had finished


@pytest.mark.parametrize("ending", ["exit", "return", "raise"])
def test_fit_or_raise_turns_every_ending_into_interrupted_and_restores_ctrl_c(
    tmp_path: Path, ending: str
) -> None:
    watch = InterruptWatch()
    with pytest.raises(Interrupted) as caught:
        fit_or_raise(_Trainer(watch, ending).fit, watch, tmp_path)
    assert caught.value.exit_code == 130
    assert str(caught.value) == (
        f"{tmp_path} has no complete epoch yet (a resume starts it from epoch 1); "
        f"continue with: cnnlab train --resume {tmp_path}"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_fit_or_raise_lets_other_exits_through(tmp_path: Path) -> None:
    def fit() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        fit_or_raise(fit, InterruptWatch(), tmp_path)


def test_a_checkpoint_save_holds_ctrl_c_until_it_is_written() -> None:
    written = []
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler has run by now
        written.append("complete")
    assert written == ["complete"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_trial_stopped_by_ctrl_c_is_queued_again_without_using_a_retry(tmp_path: Path) -> None:
    storage = open_storage(storage_url(None, tmp_path))
    study = optuna.create_study(storage=storage)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_worker(study, objective, has_work=lambda s: len(s.trials) < 1)
    stopped, queued = study.get_trials(deepcopy=False)
    assert stopped.state == optuna.trial.TrialState.FAIL
    assert queued.state == optuna.trial.TrialState.WAITING
    assert queued.params == stopped.params
    assert "retry_history" not in queued.system_attrs


@pytest.mark.slow
def test_ctrl_c_during_a_study_names_its_resume_and_the_resume_finishes_every_run(
    tmp_path: Path,
) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=20)
    out = tmp_path / "study"
    env = dict(os.environ, CNNLAB_CACHE=str(tmp_path / "cache"), COLUMNS="200", NO_COLOR="1")
    study = [sys.executable, "-m", "cnnlab", "study"]
    proc = subprocess.Popen(
        [*study, str(data), "--vary", "train.lr=1e-2,5e-2", "--seeds", "1", "--out", str(out),
         "train.epochs=4", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(_epochs_written(r) for r in out.glob("runs/*")):
        assert time.monotonic() < deadline, "no epoch after 300 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: {out} keeps its finished runs and the stopped run's complete epochs; "
        f"continue with: cnnlab study --resume {out}"
    )
    again = subprocess.run(
        [*study, "--resume", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    with (out / "results.csv").open(encoding="utf-8") as fh:
        assert [row["status"] for row in csv.DictReader(fh)] == ["done", "done"]
