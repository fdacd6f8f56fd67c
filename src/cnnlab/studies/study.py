"""The Python API of studies: plan, validate, run, resume and report.

Example:
    >>> import cnnlab
    >>> s = cnnlab.study("data/", vary={"train.lr": [1e-3, 1e-2]}, seeds=3)  # doctest: +SKIP
    >>> s.table[0]["test_accuracy_mean"]                                        # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cnnlab.console import info
from cnnlab.errors import ConfigError, interrupted_as
from cnnlab.studies.folder import (
    COMPARISONS,
    HTML,
    RESULTS,
    RUNS,
    STUDY_YAML,
    TABLE,
    create_folder,
    load_plan,
    make_split,
    study_folder,
    write_plan,
)
from cnnlab.studies.plan import (
    Cell,
    Plan,
    check_keys,
    cross,
    parse_plan,
    parse_sets,
    parse_vary,
    read_plan_file,
    seed_list,
)

DEFAULT_SEEDS = 3


class Study:
    """A study folder; the properties read its CSV files (written by the report)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _rows(self, name: str) -> list[dict[str, str]]:
        file = self.path / name
        if not file.is_file():
            return []
        with file.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    @property
    def table(self) -> list[dict[str, str]]:
        """``table.csv``: one row per cell (mean, std, 95% CI over seeds)."""
        return self._rows(TABLE)

    @property
    def results(self) -> list[dict[str, str]]:
        """``results.csv``: one row per run."""
        return self._rows(RESULTS)

    @property
    def comparisons(self) -> list[dict[str, str]]:
        """``comparisons.csv``: paired comparisons with CIs, p-values and verdicts."""
        return self._rows(COMPARISONS)

    @property
    def report(self) -> Path:
        return self.path / HTML

    @property
    def run_dirs(self) -> list[Path]:
        """Every planned run's folder (cell-major order of ``results.csv``), finished or not."""
        return [self.path / row["run_dir"] for row in self.results]

    @property
    def plan(self) -> Plan:
        return load_plan(self.path)[0]

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r})"


def _as_axes(vary: dict[str, list[Any]] | list[str] | None) -> dict[str, list[Any]]:
    if not vary:
        return {}
    if isinstance(vary, dict):
        axes = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in vary.items()}
        check_keys({k: v[0] for k, v in axes.items()}, "vary")
        return axes
    return parse_vary(list(vary))


def _as_sets(sets: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    if not sets:
        return {}
    if isinstance(sets, dict):
        return check_keys(dict(sets), "values", fixed=False)
    return parse_sets(list(sets))


def make_plan(
    data: str | Path,
    vary: dict[str, list[Any]] | list[str] | None = None,
    seeds: int | list[int] | None = None,
    recipe: str | None = None,
    plan_file: str | Path | dict[str, Any] | None = None,
    sets: dict[str, Any] | list[str] | None = None,
    command: str = "",
) -> Plan:
    """Cells x seeds from ``--vary``, a plan file or a recipe, validated before any run.

    Raises:
        ConfigError: an unknown key (with the closest valid one), a bad value in any cell,
            an unknown model, or a value that every cell overrides anyway.
    """
    from cnnlab.studies.recipes import build_recipe

    base, axes, cells, compare = _as_sets(sets), _as_axes(vary), [], "best"
    if plan_file is not None and recipe is not None:
        raise ConfigError("give either --plan or --recipe, not both")
    if plan_file is not None:
        spec = parse_plan(plan_file) if isinstance(plan_file, dict) else read_plan_file(plan_file)
        cells, compare, base = spec["cells"], spec["compare"], {**spec["base"], **base}
        seeds = seeds if seeds is not None else spec["seeds"]
    elif recipe is not None:
        spec = build_recipe(recipe, base, axes)  # takes the axes it replaces out of `axes`
        cells, compare, base = spec.cells, spec.compare, {**spec.base, **base}
        axes = {**spec.axes, **axes}
    elif not axes:
        raise ConfigError("nothing to compare: give --vary KEY=V1,V2, --plan FILE or --recipe NAME")
    cells = cross(cells, axes)
    base_seed = int(base.get("train.seed", 42))
    plan = Plan(
        data=str(Path(data).expanduser().resolve()) if Path(data).exists() else str(data),
        cells=cells,
        seeds=seed_list(DEFAULT_SEEDS if seeds is None else seeds, base_seed),
        base=base,
        compare=compare,
        recipe=recipe,
        command=command,
    )
    validate(plan)
    return plan


def validate(plan: Plan) -> None:
    """Build every cell's configuration and check its model and weights, before any run."""
    if len(plan.cells) < 1:
        raise ConfigError("the study has no cells")
    overridden = [k for k in plan.base if all(k in c.values for c in plan.cells)]
    if overridden:
        raise ConfigError(
            f"{', '.join(overridden)} is varied by the study, so a single value for it would "
            "never be used; vary it with --vary instead"
        )
    seen: dict[str, Cell] = {}
    for cell in plan.cells:
        cfg = plan.config(cell, plan.seeds[0])
        _check_weights(cell, cfg)
        key = cfg.model_dump_json()
        if key in seen:
            raise ConfigError(f"cells {seen[key].id} and {cell.id} are the same setting")
        seen[key] = cell


def _check_weights(cell: Cell, cfg: Any) -> None:
    """An unknown model, or pretrained weights that cannot be had offline, stop the study now."""
    from cnnlab.models.registry import model_info
    from cnnlab.models.transfer import resolve_mode
    from cnnlab.paths import offline

    info_ = model_info(cfg.model.name)  # unknown model -> ModelError with close names
    mode = resolve_mode(cfg.model.name, cfg.model.mode)
    wants = cfg.model.pretrained == "true" or (cfg.model.pretrained == "auto" and mode != "scratch")
    missing = info_.kind == "timm" and not info_.offline_weights and not cfg.model.weights
    if wants and missing and offline():  # online, the hub may still provide them
        raise ConfigError(
            f"cell {cell.id} ({cell.label}): {cfg.model.name} in mode {mode} needs "
            "pretrained weights and none are available offline; pass "
            "model.weights=FILE, or model.mode=scratch to train it from random weights"
        )


def run_study(
    plan: Plan,
    out: str | Path | None = None,
    workers: int = 1,
    storage: str | None = None,
) -> Study:
    """Save the plan and the split, train every (cell, seed) run, and write the report.

    ``plan`` comes from :func:`make_plan`, which has already validated every cell.
    """
    from cnnlab.schedule.storage import redact

    if not plan.command:
        plan.command = synthesized_command(plan)
    folder = study_folder(out, plan.recipe or "study", plan.data)  # before anything is made
    existed = folder.exists()
    create_folder(folder)
    try:
        write_plan(folder, plan, redact(storage) if storage else None)
        make_split(folder, plan)
    except BaseException:  # a folder the data refused holds no study: the next try starts clean
        _empty(folder, remove=not existed)
        raise
    size = f"{len(plan.cells)} cells x {len(plan.seeds)} seeds = {len(plan.jobs())} runs"
    info(f"study folder: {folder} ({size})")
    return _run_and_report(folder, plan, storage, workers)


def _empty(folder: Path, remove: bool) -> None:
    """Undo a study folder's start: remove it, or (given empty) empty it again."""
    import shutil

    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def resume_study(folder: str | Path, workers: int = 1, storage: str | None = None) -> Study:
    """Continue a study: finished runs are kept, an interrupted run resumes from its checkpoint,
    and a run that failed for any reason but divergence is trained again (its cause, such as
    a missing file, may be fixed now; a diverged run is the setting's result and is kept).

    Also how another machine joins a study whose ``--storage`` is a database server.
    """
    folder = Path(folder)
    plan, doc = load_plan(folder)
    recorded = doc.get("storage")
    if recorded and not storage:
        if "***" in recorded:
            raise ConfigError(
                f"{folder} uses the storage {recorded}; pass it again with --storage "
                "(its password is not saved in study.yaml)"
            )
        storage = recorded
    info(f"resuming study {folder}")
    return _run_and_report(folder, plan, storage, workers, retry=True)


def report_study(folder: str | Path) -> Study:
    """Rebuild results.csv, table.csv, comparisons.csv and study.html from the run folders."""
    _report(Path(folder))
    return Study(folder)


def _report(folder: Path) -> Any:
    from cnnlab.studies.report import write_outputs
    from cnnlab.studies.show import print_outputs

    out = write_outputs(folder)
    print_outputs(folder, out)
    return out


def _run_and_report(
    folder: Path, plan: Plan, storage: str | None, workers: int, retry: bool = False
) -> Study:
    from cnnlab import track
    from cnnlab.schedule.storage import lost_storage, redact, storage_error, storage_url
    from cnnlab.studies.runner import retry_failed, run_jobs

    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1")
    # The cells' runs live in folder/runs, so their tracking store does too (as for any run).
    cfg = plan.config(plan.cells[0], plan.seeds[0]).model_copy(
        update={"runs_dir": str(folder / RUNS)}
    )
    name = folder.resolve().name
    resume = f"cnnlab study --resume {folder}"
    try:
        retried = retry_failed(folder, plan, storage) if retry else []
        if retried:  # a diverged run is a result and is kept
            info(f"training again {len(retried)} failed run(s): {', '.join(retried)}")
        with track.parent_run(cfg, "study", name, plan.to_dict(), folder, wait=True) as parent:
            with interrupted_as(
                f"{folder} keeps its finished runs and the stopped run's complete epochs", resume
            ):
                run_jobs(folder, plan, storage, workers)
            _track_outputs(parent, folder, _report(folder))
    except Exception as exc:
        if storage_error(exc) is None:
            raise
        url = storage or storage_url(None, folder)  # as the user wrote it
        # study.yaml keeps no password: then --resume needs --storage again
        again = f"run `{resume}`" + (" with --storage" if "***" in redact(url) else "")
        raise lost_storage(url, exc, kept="runs", again=again) from None
    return Study(folder)


def _track_outputs(parent: Any, folder: Path, out: Any) -> None:
    """Every run is made complete in the store (one that ended in an invocation killed before
    its tracker logged it is sent again); the best cell's runs are tagged best; the study's
    tables and report go to the parent."""
    from cnnlab.studies.compare import reference

    parent.log_runs(record.path for record in out.records)
    best, _ = reference(out.table)
    for record in out.records:
        if best is not None and record.cell.id == best["cell"] and record.status == "done":
            parent.tag_best(record.path)
    files = [folder / name for name in (STUDY_YAML, TABLE, COMPARISONS, RESULTS, HTML)]
    parent.log(files, {"cnnlab.best_cell": best["cell"]} if best is not None else None)


def synthesized_command(plan: Plan) -> str:
    """A ``cnnlab study`` command line equivalent to the plan (for API-made studies)."""
    return f"cnnlab study {plan.data} --plan study.yaml  # made through the Python API"
