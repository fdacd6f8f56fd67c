"""Plots drawn in two processes are the same files as drawn in one, whatever the child does."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.evaluation import plotjobs, plots
from cnnlab.evaluation.metrics import compute_metrics
from cnnlab.evaluation.plotjobs import PlotJobs, split_by_cost

TEST_PID = os.getpid()


def _schedule(jobs: PlotJobs, out: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    probs = rng.dirichlet(np.ones(4), 60)
    m = compute_metrics(y, probs, ["a", "b", "c", "d"])
    paths = [out / "cm.png", out / "f1.png", out / "rel.png", out / "worst.png"]
    jobs.add(plots.plot_confusion_matrix, m["confusion_matrix"], m["classes"], paths[0])
    jobs.add(plots.plot_per_class_f1, m["per_class"], paths[1])
    jobs.add(plots.plot_reliability, probs, y, paths[2])
    images = list(rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    jobs.add(plots.plot_worst_mistakes, images, [0] * 5, [1] * 5, [0.9] * 5, m["classes"], paths[3])
    return paths


@pytest.mark.parametrize("processes", [2, 4])
def test_forked_drawing_writes_the_same_bytes_as_drawing_here(tmp_path, processes):
    serial, forked = PlotJobs(processes=1), PlotJobs(processes=processes)
    one = _schedule(serial, tmp_path / "one")
    two = _schedule(forked, tmp_path / "two")
    serial.draw()
    forked.draw()
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert serial.jobs == [] and forked.jobs == []


def test_each_forked_share_is_drawn_by_its_own_child(tmp_path):
    """Four processes: three children, each drawing its share, and this process the rest."""
    jobs = PlotJobs(processes=4)
    targets = [tmp_path / f"{i}.txt" for i in range(8)]
    for target in targets:
        jobs.add(_write_pid, target)
    jobs.draw()
    pids = {int(t.read_text()) for t in targets}
    assert len(pids) == 4 and TEST_PID in pids


def _write_pid(path: Path) -> None:
    path.write_text(str(os.getpid()))


def _pid_jobs(folder: Path, n: int) -> list[Any]:
    """A producer's result: ``n`` jobs writing their process id."""
    return [(_write_pid, (folder / f"produced-{i}.txt",), {}) for i in range(n)]


@pytest.mark.parametrize(("processes", "drawers"), [(2, 1), (3, 3), (4, 3)])
def test_the_figures_a_producer_returns_are_shared_out_from_three_processes(
    tmp_path, processes, drawers
):
    """The Grad-CAM figures come from a producer run here after the first fork: with 3+
    processes they are split among new children and this process instead of all drawn here."""
    jobs = PlotJobs(processes=processes)
    jobs.add_here(_pid_jobs, tmp_path, 3)
    for i in range(4):
        jobs.add(_write_pid, tmp_path / f"plot-{i}.txt")
    jobs.draw()
    produced = {int(p.read_text()) for p in tmp_path.glob("produced-*.txt")}
    assert len(produced) == drawers and TEST_PID in produced
    assert len(list(tmp_path.glob("plot-*.txt"))) == 4


def test_a_produced_share_that_fails_in_its_child_is_drawn_here(tmp_path):
    jobs = PlotJobs(processes=3)
    targets = [tmp_path / f"produced-{i}.txt" for i in range(3)]
    jobs.add_here(lambda: [(_only_here, (t,), {}) for t in targets])
    jobs.add(_write_pid, tmp_path / "a.txt")
    jobs.add(_write_pid, tmp_path / "b.txt")
    jobs.draw()
    assert all(t.read_text() == "drawn here" for t in targets)


def _only_here(path: Path) -> None:
    """Fails in any process but the test's own: the forked child's share must be redrawn."""
    if os.getpid() != TEST_PID:
        raise RuntimeError("not in the child")
    path.write_text("drawn here")


def _hangs_in_child(path: Path) -> None:
    if os.getpid() != TEST_PID:
        time.sleep(600)
    path.write_text("drawn here")


@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("job", [_only_here, _hangs_in_child])
def test_a_failed_or_hung_child_share_is_drawn_here(tmp_path, monkeypatch, job, processes):
    monkeypatch.setattr(plotjobs, "_CHILD_WAIT_S", 2.0)
    jobs = PlotJobs(processes=processes)
    targets = [tmp_path / f"{i}.txt" for i in range(4)]
    for target in targets:
        jobs.add(job, target)
    start = time.perf_counter()
    jobs.draw()
    assert all(t.read_text() == "drawn here" for t in targets)
    assert time.perf_counter() - start < 30  # the hung children were killed, not waited for


def _always_fails(path: Path) -> None:
    raise ValueError(f"cannot draw {path.name}")


def test_a_real_error_still_reaches_the_caller(tmp_path):
    jobs = PlotJobs(processes=2)
    jobs.add(_always_fails, tmp_path / "a.png")
    jobs.add(_always_fails, tmp_path / "b.png")
    with pytest.raises(ValueError, match="cannot draw"):
        jobs.draw()


def test_shares_are_balanced_by_cost():
    names = ["plot_confusion_matrix", "plot_per_class_f1", "plot_reliability"] * 2
    fns = [getattr(plots, n) for n in names] + [plots.plot_learning_curves]
    mine, theirs = split_by_cost([(fn, (), {}) for fn in fns])
    assert len(mine) + len(theirs) == 7
    cost = [sum(plotjobs._COST[f.__name__] for f, _, _ in share) for share in (mine, theirs)]
    assert abs(cost[0] - cost[1]) <= 1.5


def _named(name: str) -> Any:
    """A job function that only has a name (its cost is looked up by name)."""

    def job() -> None: ...

    job.__name__ = name
    return job


def test_four_shares_balance_a_runs_plots_around_its_grad_cams():
    """A run's 10 plots and its Grad-CAM producer (6 units, drawn here) in 4 shares: this
    process gets the least plotting, and no share costs much more than a quarter."""
    names = ["plot_confusion_matrix", "plot_worst_mistakes", "plot_reliability",
             "plot_per_class_f1"] * 2 + ["plot_learning_curves", "plot_embedding"]  # fmt: skip
    jobs = [(_named(n), (), {}) for n in names]
    here = [(_named("explain_jobs"), (), {})]
    shares = split_by_cost(jobs, here=here, shares=4)
    assert sum(len(s) for s in shares) == len(jobs) and all(shares)
    costs = [sum(plotjobs._COST[f.__name__] for f, _, _ in s) for s in shares]
    costs[0] += plotjobs._COST["explain_jobs"]
    assert max(costs) - min(costs) <= 3.0 and costs[0] <= max(costs)


@pytest.mark.parametrize(
    ("platform", "cores", "load", "expected"),
    [("linux", 2, 0.3, 2), ("linux", 2, 2.5, 2), ("linux", 2, 3.5, 1), ("linux", 1, 0.0, 1),
     ("darwin", 8, 0.0, 1), ("linux", 3, 0.5, 3), ("linux", 16, 8.0, 4), ("linux", 8, 9.5, 1)],
)  # fmt: skip
def test_the_fork_is_used_only_where_a_second_core_is_likely_free(
    monkeypatch, platform, cores, load, expected
):
    monkeypatch.setattr(plotjobs.sys, "platform", platform)
    monkeypatch.setattr(plotjobs, "usable_cores", lambda: cores)
    monkeypatch.setattr(plotjobs.os, "getloadavg", lambda: (load, load, load))
    assert plotjobs.default_processes() == expected


def test_started_drawing_returns_at_once_and_then_writes_the_same_files(tmp_path):
    now, later = PlotJobs(), PlotJobs()
    one = _schedule(now, tmp_path / "one")
    two = _schedule(later, tmp_path / "two")
    now.draw()
    done: list[Path] = []
    drawing = later.start(then=lambda: done.append(tmp_path / "two" / "report.txt"))
    drawing.wait()
    assert drawing.done()
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert later.jobs == [] and done == []  # `then` ran in the child, after the plots


@pytest.mark.parametrize("job", [_only_here, _hangs_in_child])
def test_a_started_drawing_that_fails_is_done_here_on_wait(tmp_path, monkeypatch, job):
    monkeypatch.setattr(plotjobs, "_CHILD_WAIT_S", 2.0)
    jobs = PlotJobs()
    targets = [tmp_path / f"{i}.txt" for i in range(3)]
    for target in targets:
        jobs.add(job, target)
    report = tmp_path / "report.txt"
    drawing = jobs.start(then=lambda: report.write_text("after the plots"))
    drawing.wait()
    assert all(t.read_text() == "drawn here" for t in targets)
    assert report.read_text() == "after the plots"


def _always_fails(path: Path) -> None:
    raise ValueError(f"cannot draw {path.name}")


def test_a_deferred_figure_that_cannot_be_drawn_costs_a_warning_not_the_study(tmp_path, capfd):
    from cnnlab.evaluation import background

    told: list[str] = []
    with background.deferred_figures():
        jobs = PlotJobs()
        jobs.add(_always_fails, tmp_path / "bad.png")
        background.add(tmp_path, jobs.start(then=lambda: None))
        background.when_drawn(tmp_path, lambda: told.append("drawn"))
    assert told == ["drawn"]  # tracking still gets the run's end
    assert "could not be drawn" in capfd.readouterr().err


def test_a_lone_runs_figure_that_cannot_be_drawn_is_an_error(tmp_path):
    """``strict`` (``cnnlab train``): a full disk fails the command, as it did before deferring."""
    from cnnlab.evaluation import background

    with (
        pytest.raises(ValueError, match=r"cannot draw bad\.png"),
        background.deferred_figures(share=True, strict=True),
    ):
        jobs = PlotJobs()
        jobs.add(_always_fails, tmp_path / "bad.png")
        jobs.add(_always_fails, tmp_path / "bad.png")
        background.add(tmp_path, jobs.start(then=lambda: None, share=background.sharing()))
    assert not background.deferring() and not background._pending and not background._callbacks


def _produce_here(log: list[str], path: Path) -> list:
    """An add_here job: must run in the test's process; returns one plot job to draw anywhere."""
    assert os.getpid() == TEST_PID, "a model's job ran in the forked child"
    log.append("produced")
    return [(Path.write_text, (path, "drawn"), {})]


@pytest.mark.parametrize("how", ["draw", "start", "start-share"])
def test_jobs_that_need_the_model_run_here_and_what_they_return_is_drawn(tmp_path, how):
    jobs = PlotJobs(processes=2)
    paths = _schedule(jobs, tmp_path)
    log: list[str] = []
    jobs.add_here(_produce_here, log, tmp_path / "cam.txt")
    report = tmp_path / "report.txt"
    if how == "draw":
        jobs.draw()
    else:
        drawing = jobs.start(then=lambda: report.write_text("after"), share=how == "start-share")
        # without share the model's job ran before the fork; with it, it waits for `wait`
        assert log == ([] if how == "start-share" else ["produced"])
        drawing.wait()
        assert report.read_text() == "after"
    assert log == ["produced"] and (tmp_path / "cam.txt").read_text() == "drawn"
    assert all(p.is_file() for p in paths)
    assert jobs.jobs == [] and jobs.producers == []


def test_a_shared_drawing_leaves_half_for_the_waiting_process():
    fns = [plots.plot_confusion_matrix, plots.plot_reliability, plots.plot_per_class_f1] * 2
    mine, theirs = split_by_cost([(fn, (), {}) for fn in fns], here=[(_produce_here, (), {})])
    # the model's job (cost 1, unknown name) counts on this process's side
    assert len(mine) + len(theirs) == 6 and len(theirs) >= len(mine)
