"""Fixed cost around every run: start-up, imports and wrap-up (evaluation, plots, report).

Issue 11's goals, measured side by side in one run against the plain PyTorch script's own
fixed cost (a fresh interpreter that imports torch and torchvision and writes one file):
- a trivial ``cnnlab train`` (1 epoch, 200 images, 32 px), timed as a whole process: at most
  2x that cost;
- the wrap-up of a finished run (evaluation of val and test, plots, report) with 500 test
  images at 32 px: under 1.5 s. Timed three ways: as ``cnnlab train`` runs it
  (``api.fit_and_print``: ``finalize`` returns once the numbers are written, the results
  print while forked children draw their shares of the plots, then the process draws its
  share and the report; both times are printed), ``fit()`` from Python (``finalize`` draws every
  figure before it returns) and a run inside a study or tune (``deferred_figures``: a forked
  child draws while the next run trains; the time until the figures exist is printed beside
  it);
- inside one process (studies, tuning), run 2 and later pay no import or start-up cost:
  ``cnnlab.api.fit_config`` three times in a row inside one ``deferred_figures`` (as a
  study's or tune's runs are), run 2 against run 1;
- ``cnnlab --help``: under 0.5 s.
The processes alternate round by round (plain script, help, trivial run, in-process runs) and
the best round of each is kept: on a shared machine the minimum is the least noisy estimate.
CPU seconds (user + system) are printed beside wall seconds; they move less when other work
shares the cores. Wrap-up is timed inside ``fit`` by wrapping ``engine.finalize.finalize``.
One wrap-up process runs ``fit`` as ``cnnlab train`` does (cold), then deferred as in a study
(``d``); another with plots drawn before ``fit`` returns, the default way (cold, then warm),
then in one process (``eval.plot_processes=1``). A last one runs ``cnnlab train``'s path with
the plots in four shares (``eval.plot_processes=4``, as on a machine with four free cores)
and meters each process's drawing CPU: on a machine with fewer cores the shares queue for
them, so that row's wall time is measured here but its time on four free cores is an
estimate (the numbers' wall time + the largest share's CPU + this process's CPU after it).
Children run with bytecode caching on (as an installed package has it), after a warm-up that
compiles cnnlab, whatever ``PYTHONDONTWRITEBYTECODE`` says in the calling shell.

Usage: python bench/bench_overhead.py [--quick] [--rounds N] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common import OUT_DIR, REPO_ROOT, ratio, save_result, shapes_image, table

PLAIN = "import sys, torch, torchvision; open(sys.argv[1], 'w').write(torch.__version__)"
GOALS = {"trivial_x_plain": 2.0, "wrapup_s": 1.5, "help_s": 0.5}


def make_folder(root: Path, counts: dict[str, int], seed: int) -> Path:
    """Write (once) 10 classes of 32-px shapes: ``root/<class>`` or ``root/<split>/<class>``."""
    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for i in range(n):
            folder = root / split / f"class_{i % 10}" if split else root / f"class_{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            shapes_image(i % 10, rng, 32).save(folder / f"{i:04d}.png")
    (root / ".complete").write_text("ok")
    return root


THREADS: dict[str, str] = {}  # OMP_NUM_THREADS for the children when --torch-threads is set


def child_env() -> dict[str, str]:
    """This environment with bytecode caching on: a user's installed cnnlab has its .pyc."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **THREADS}


def timed_process(argv: Sequence[str]) -> dict[str, Any]:
    """Wall and CPU seconds (user + system) of one child process; its last JSON line if any."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, cwd=REPO_ROOT, env=child_env()
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({proc.returncode}): {tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return {"wall_s": wall, "cpu_s": cpu, **(json.loads(lines[-1]) if lines else {})}


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (the forked plot helper)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _clock() -> tuple[float, float]:
    return time.perf_counter(), _cpu()


def _since(start: tuple[float, float]) -> list[float]:
    """[wall s, cpu s] since ``start``."""
    return [time.perf_counter() - start[0], _cpu() - start[1]]


def child(data: str, runs_dir: str, plot_processes: list[str]) -> None:
    """In one process: import the API, then one ``fit_config`` per plot setting; print JSON.

    A setting is ``eval.plot_processes`` (0: auto, 1: one process), ``d``: inside
    ``deferred_figures`` (a study's run), with the wait for the drawing timed apart, or ``c``:
    as ``cnnlab train`` runs it (``api.fit_and_print``: the results print while a forked child
    draws half the plots, then this process draws the rest), the time after ``fit_config``
    returned timed apart. A first setting ``study`` puts every run in one
    ``deferred_figures``, as a study's runs are.
    """
    start = _clock()
    from cnnlab.api import fit_and_print, fit_config, make_config
    from cnnlab.console import set_quiet
    from cnnlab.engine import finalize as fin
    from cnnlab.evaluation.background import deferred_figures

    imported = _since(start)
    set_quiet(True)
    wrapups: list[list[float]] = []
    inner = fin.finalize

    def timed_finalize(*args: Any, **kwargs: Any) -> Any:
        t = _clock()
        try:
            return inner(*args, **kwargs)
        finally:
            wrapups.append(_since(t))

    fin.finalize = timed_finalize  # fit imports it at call time, so this is what it runs
    runs, drawn = [], []
    study = plot_processes[0] == "study"  # every run inside one deferred_figures, as a study
    outer = contextlib.ExitStack()
    if study:
        plot_processes = plot_processes[1:]
        outer.enter_context(deferred_figures())
    shares: dict[str, Any] = {}
    for setting in plot_processes:
        deferred = setting == "d"
        if setting == "c4":  # cnnlab train's path, the plots in 4 shares, each metered
            shares = _meter_shares()
        processes = 4 if setting == "c4" else int(setting.isdigit() and setting)
        cfg = make_config(data, values={"train.epochs": 1, "data.img_size": 32, "train.seed": 0,
                                        "eval.plot_processes": processes,
                                        "runs_dir": runs_dir})  # fmt: skip
        t = _clock()
        if setting.startswith("c"):
            returned: list[tuple[float, float]] = []

            def fit_marked(cfg: Any = cfg, returned: list = returned) -> Any:
                nonlocal mine
                run = fit_config(cfg)
                returned.append(_clock())
                mine = time.process_time()  # this process's CPU from here on
                return run

            mine = time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):  # the results table
                fit_and_print(fit_marked)
            drawn.append(_since(returned[0]))  # results printed, figures and report drawn
            if shares:
                shares["main_after_s"] = time.process_time() - mine
        else:
            with deferred_figures() if deferred else contextlib.nullcontext():
                fit_config(cfg)
                waited = _clock()
            if deferred:
                drawn.append(_since(waited))  # figures still being drawn when fit returned
        runs.append(_since(t))
    if study:
        waited = _clock()
        outer.close()  # the study ends: its runs' figures are waited for
        drawn.append(_since(waited))
    if shares:
        shares["draw_cpu_s"] = _read_shares(shares.pop("folder"))
    print(json.dumps({"import": imported, "runs": runs, "wrapups": wrapups, "drawn": drawn,
                      "shares": shares}))  # fmt: skip


def _meter_shares() -> dict[str, Any]:
    """Record the CPU each process spends drawing its share (and, here, computing the
    Grad-CAMs), one file per process id in a temp folder; returns ``{"folder": ...}``.

    A child forked after the Grad-CAMs were computed (it draws their figures) starts that
    much later: its lines carry this process's drawing CPU spent before its fork.
    """
    from cnnlab.evaluation import plotjobs

    folder = Path(tempfile.mkdtemp(prefix="bench-shares-"))
    main = os.getpid()
    spent = [0.0]  # this process's drawing CPU so far; a forked child keeps the value it saw

    def metered(inner: Any) -> Any:
        def call(*args: Any) -> Any:
            start = time.process_time()
            try:
                return inner(*args)
            finally:
                cpu = time.process_time() - start
                here = os.getpid() == main
                with open(folder / ("main" if here else str(os.getpid())), "a") as out:
                    out.write(f"{cpu} {0.0 if here else spent[0]}\n")
                if here:
                    spent[0] += cpu

        return call

    plotjobs._draw_here = metered(plotjobs._draw_here)
    plotjobs._produce = metered(plotjobs._produce)
    return {"folder": str(folder)}


def _read_shares(folder: str) -> dict[str, float]:
    """Per process (``main`` and one entry per child), the CPU seconds of this wrap-up's
    critical path up to its share's end if it had its own core: its drawing CPU plus, for a
    child forked after the Grad-CAMs, this process's drawing CPU before that fork."""
    found = {}
    for path in Path(folder).iterdir():
        lines = [[float(x) for x in line.split()] for line in path.read_text().splitlines()]
        found[path.name] = sum(cpu for cpu, _ in lines) + max(before for _, before in lines)
        path.unlink()
    Path(folder).rmdir()
    return found


def warm_up() -> None:
    """Compile cnnlab's modules once, so no measured process pays for it."""
    code = (
        "import compileall, pathlib, cnnlab; "
        "compileall.compile_dir(pathlib.Path(cnnlab.__file__).parent, quiet=1)"
    )
    timed_process([sys.executable, "-c", code])


def one_round(trivial: Path, wrap: Path, tmp: Path) -> dict[str, dict[str, Any]]:
    """Every measurement once, in a fixed order, so all of them see the same machine load."""
    py = sys.executable
    return {
        "plain": timed_process([py, "-c", PLAIN, str(tmp / "plain.txt")]),
        "help": timed_process([py, "-m", "cnnlab", "--help"]),
        "trivial": timed_process([py, "-m", "cnnlab", "train", str(trivial), "--epochs", "1",
                                  "--img-size", "32", "--runs-dir", str(tmp / "runs"), "-q"]),
        "inproc": timed_process([py, __file__, "--child", str(trivial), str(tmp / "runs"),
                                 "study,d,d,d"]),
        "wrap": timed_process([py, __file__, "--child", str(wrap), str(tmp / "runs"),
                               "c,d"]),
        "wrapsync": timed_process([py, __file__, "--child", str(wrap), str(tmp / "runs"),
                                   "0,0,1"]),
        "wrap4": timed_process([py, __file__, "--child", str(wrap), str(tmp / "runs"), "c4"]),
    }  # fmt: skip


def best(rounds: list[dict[str, dict[str, Any]]], name: str, pick: Any) -> Any:
    """The round whose measurement ``name`` has the smallest ``pick(measurement)``."""
    return min((r[name] for r in rounds), key=pick)


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Best round of each measurement (wall and CPU seconds) and the goal ratios."""
    wall = lambda m: m["wall_s"]  # noqa: E731
    plain, trivial = best(rounds, "plain", wall), best(rounds, "trivial", wall)
    inproc = best(rounds, "inproc", lambda m: m["runs"][1][0])
    wrap = best(rounds, "wrap", lambda m: m["wrapups"][0][0])
    sync = best(rounds, "wrapsync", lambda m: m["wrapups"][0][0])
    runs = inproc["runs"]
    four = best(rounds, "wrap4", lambda m: m["wrapups"][0][0] + m["drawn"][0][0])
    draw_cpu = four["shares"]["draw_cpu_s"]
    after_draw = four["shares"]["main_after_s"] - draw_cpu.get("main", 0.0)
    cli_report = [a + b for a, b in zip(wrap["wrapups"][0], wrap["drawn"][0], strict=True)]
    return {
        "plain": [plain["wall_s"], plain["cpu_s"]],
        "help": [best(rounds, "help", wall)["wall_s"], best(rounds, "help", wall)["cpu_s"]],
        "trivial": [trivial["wall_s"], trivial["cpu_s"]],
        "trivial_x_plain": ratio(trivial["wall_s"], plain["wall_s"]),
        "trivial_cpu_x_plain": ratio(trivial["cpu_s"], plain["cpu_s"]),
        "wrapup_cli": wrap["wrapups"][0],
        "wrapup_cli_report": cli_report,
        "wrapup": sync["wrapups"][0],
        "wrapup_warm": sync["wrapups"][1],
        "wrapup_warm_serial": sync["wrapups"][2],
        "forked_plots_speedup": ratio(sync["wrapups"][2][0], sync["wrapups"][1][0]),
        "wrapup_deferred": wrap["wrapups"][1],
        "wrapup_cli_report_4": [
            a + b for a, b in zip(four["wrapups"][0], four["drawn"][0], strict=True)
        ],
        "share_cpu_s": draw_cpu,
        "wrapup_cli_report_4_est": four["wrapups"][0][0]
        + max(draw_cpu.values())
        + max(0.0, after_draw),
        "figures_after": wrap["drawn"][1],
        "inproc_import": inproc["import"],
        "inproc_runs": runs,
        "run2_x_run1": ratio(runs[1][0], runs[0][0]),
        "run2_cpu_x_run1": ratio(runs[1][1], runs[0][1]),
    }


def report(s: dict[str, Any]) -> str:
    """The goals as a Markdown table: wall and CPU seconds, goal, verdict (on wall time)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    runs = s["inproc_runs"]
    per_run = " / ".join(f"{r[0]:.2f}" for r in runs), " / ".join(f"{r[1]:.2f}" for r in runs)
    rows = [
        ["plain script: python, import torch + torchvision, write a file", *s["plain"],
         "baseline", "-"],
        ["cnnlab --help", *s["help"], "< 0.5 s", verdict(s["help"][0] < GOALS["help_s"])],
        ["cnnlab train: 200 images, 1 epoch, 32 px (whole process)", *s["trivial"],
         "<= 2x plain", f"{s['trivial_x_plain']:.2f}x plain (cpu "
         f"{s['trivial_cpu_x_plain']:.2f}x): "
         f"{verdict(s['trivial_x_plain'] <= GOALS['trivial_x_plain'])}"],
        ["wrap-up of `cnnlab train`, val 100 + test 500 images: until the results print",
         *s["wrapup_cli"], "< 1.5 s", verdict(s["wrapup_cli"][0] < GOALS["wrapup_s"])],
        ["  until its figures and report exist (plots shared with forked children)",
         *s["wrapup_cli_report"], "< 1.5 s",
         verdict(s["wrapup_cli_report"][0] < GOALS["wrapup_s"])],
        ["  same, plots in 4 shares (eval.plot_processes=4), on this machine",
         *s["wrapup_cli_report_4"], "-", "-"],
        ["  same, estimate for 4 free cores (numbers + largest share's CPU + report)",
         round(s["wrapup_cli_report_4_est"], 2), "-", "< 1.5 s",
         verdict(s["wrapup_cli_report_4_est"] < GOALS["wrapup_s"]) + " (estimate)"],
        ["wrap-up of `fit()` from Python (figures drawn before it returns), first run",
         *s["wrapup"], "< 1.5 s", verdict(s["wrapup"][0] < GOALS["wrapup_s"])],
        ["wrap-up: same, second run", *s["wrapup_warm"], "-", "-"],
        ["wrap-up: same, third run, plots in one process", *s["wrapup_warm_serial"], "-",
         f"forked plots {s['forked_plots_speedup']:.2f}x faster"],
        ["wrap-up of a study's or tune's run (figures deferred)", *s["wrapup_deferred"],
         "< 1.5 s", verdict(s["wrapup_deferred"][0] < GOALS["wrapup_s"])],
        ["  then the figures' wait (a study's next run trains meanwhile)",
         *s["figures_after"], "-", "-"],
        ["in process: import cnnlab.api + engine", *s["inproc_import"], "-", "-"],
        ["in process, as a study: fit_config run 1 / 2 / 3 (200 images)", *per_run,
         "run 2 pays no start-up", f"run 2 = {s['run2_x_run1']:.2f}x run 1 "
         f"(cpu {s['run2_cpu_x_run1']:.2f}x)"],
    ]  # fmt: skip
    return table(["measure", "wall s", "cpu s", "goal", "result"], rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is kept")
    parser.add_argument(
        "--torch-threads", type=int, help="OMP_NUM_THREADS for every child (a busy machine)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("DATA", "RUNS_DIR", "PLOT_PROCESSES"), help="internal"
    )
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.child[2].split(","))
        return {}
    if args.torch_threads:
        THREADS["OMP_NUM_THREADS"] = str(args.torch_threads)
    trivial = make_folder(OUT_DIR / "data" / "overhead-200-v1", {"": 200}, seed=0)
    wrap = make_folder(OUT_DIR / "data" / "overhead-wrapup-v1",
                       {"train": 200, "val": 100, "test": 500}, seed=1)  # fmt: skip
    warm_up()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1 if args.quick else args.rounds):
            rounds.append(one_round(trivial, wrap, Path(tmp)))
            print(f"round {i + 1}: trivial {rounds[-1]['trivial']['wall_s']:.2f} s, "
                  f"plain {rounds[-1]['plain']['wall_s']:.2f} s", flush=True)  # fmt: skip
    summary = summarise(rounds)
    print(report(summary))
    save_result("overhead", {"summary": summary, "rounds": rounds, "env": THREADS})
    return summary


if __name__ == "__main__":
    main()
