"""Where cnnlab keeps its caches and outputs: never inside the user's dataset folder.

The dataset is read-only to cnnlab, and whatever cnnlab writes inside it would be found by
the next scan (a run's PNG plots as images of a class). So every output and cache location is
checked against the dataset folder: an explicit one inside it is refused, a default one that
would land inside it moves beside the dataset instead.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, OutputError


def expand_home(value: Any) -> Any:
    """``~`` and ``~user`` at the start of a path (a str, a Path, or each of a list) expanded,
    as the shell does for an unquoted word; anything else is returned unchanged.

    The one rule for every path the user gives (CLI options and arguments, config paths):
    a ``~`` the shell left alone (``--runs-dir=~/r``, a quoted path, a YAML file) once made a
    literal ``./~`` folder for some files while Lightning expanded it for the checkpoints.
    A ``KEY=VALUE`` override never starts with ``~``, so a list of them passes unchanged.

    Example:
        >>> expand_home("~/r") == os.path.join(os.path.expanduser("~"), "r")
        True
        >>> expand_home(["runs", "train.lr=0.1", None])
        ['runs', 'train.lr=0.1', None]
    """
    if isinstance(value, (list, tuple)):
        return type(value)(expand_home(item) for item in value)
    if isinstance(value, (str, Path)) and str(value).startswith("~"):
        expanded = os.path.expanduser(str(value))
        return Path(expanded) if isinstance(value, Path) else expanded
    return value


def cache_root() -> Path:
    """``$CNNLAB_CACHE``, default ``~/.cache/cnnlab`` (not created)."""
    return Path(os.environ.get("CNNLAB_CACHE") or Path.home() / ".cache" / "cnnlab")


def usable_cache_root() -> Path:
    """:func:`cache_root`, refused when it cannot be a folder: the one check behind training,
    ``cache list`` and ``cache clean`` (a file there used to read as "not created yet").

    Raises:
        OutputError: ``$CNNLAB_CACHE``, or a path above it, is a file.
    """
    root = cache_root()
    existing = _nearest_existing(root)
    if existing.is_dir():
        return root
    source = "CNNLAB_CACHE" if os.environ.get("CNNLAB_CACHE") else "CNNLAB_CACHE (default)"
    where = "is a file" if existing == root else f"cannot be made: {existing} is a file"
    raise OutputError(
        f"{source} {root} {where}, not a folder; set CNNLAB_CACHE to a folder cnnlab can write"
    )


def cache_dir(*parts: str) -> Path:
    """``$CNNLAB_CACHE`` (default ``~/.cache/cnnlab``) joined with ``parts``, created.

    Raises:
        OutputError: the cache cannot be a folder (:func:`usable_cache_root`).
    """
    path = usable_cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when the user asked cnnlab never to reach a model hub (``CNNLAB_OFFLINE=1``)."""
    return os.environ.get("CNNLAB_OFFLINE", "").lower() in {"1", "true", "yes"}


def dataset_folder(root: str | os.PathLike[str]) -> Path:
    """The folder a dataset occupies: the folder itself, or the folder a CSV manifest's paths
    are read from (its ``root`` column, as ``data issues``' clean.csv names the dataset it
    cleaned, else the manifest's own folder).

    Outputs are refused inside this folder: a clean.csv kept outside the dataset once made
    the check guard the CSV's folder, and ``--runs-dir DATASET/runs`` wrote into the data.
    """
    path = Path(root).expanduser().resolve()
    if not path.is_file():
        return path
    from cnnlab.data.issues_index import manifest_root
    from cnnlab.errors import CnnlabError

    try:
        return manifest_root(path, allow_outside=True).resolve()
    except (CnnlabError, OSError, UnicodeDecodeError):
        return path.parent  # the command that reads the manifest names what is wrong with it


def is_inside(path: str | os.PathLike[str], folder: Path) -> bool:
    """True when ``path`` (resolved, links followed) is ``folder`` or lies below it."""
    return Path(path).expanduser().resolve().is_relative_to(folder)


def outside_dataset(given: Path | None, default: Path, dataset: Path, what: str) -> Path:
    """Where an output goes: ``given`` unless inside the dataset (an error), else ``default``,
    moved beside the dataset folder when it would land inside it (cwd is in the dataset).

    Raises:
        ConfigError: ``given`` is inside the dataset folder.
    """
    if given is not None:
        if is_inside(given, dataset):
            raise ConfigError(
                f"{what} {given} is inside the dataset folder {dataset}; cnnlab never writes "
                "into your data: choose a folder outside it"
            )
        return given
    if is_inside(default, dataset):
        return dataset.parent / default
    return default


def run_dataset_root(run: str | os.PathLike[str]) -> str | None:
    """The dataset root in a run's (or an ensemble's) ``config.yaml``; None if unreadable."""
    import yaml

    from cnnlab.errors import CnnlabError
    from cnnlab.runs import Run

    try:
        cfg = Run(Path(run)).config
    except (CnnlabError, OSError, yaml.YAMLError):
        return None  # the command that loads the run names what is wrong with the folder
    data = cfg.get("data") if isinstance(cfg, dict) else None
    return data.get("root") if isinstance(data, dict) else None


def check_outside_run_data(
    out: str | os.PathLike[str],
    run: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    what: str = "--out",
) -> None:
    """Refuse an output of a command on a finished run (predict, eval, export, explain) inside
    the run's dataset folder, or inside ``data`` (eval's ``--data``): the same rule
    :func:`outside_dataset` applies to ``runs_dir`` when training, before any work.

    Raises:
        ConfigError: ``out`` is inside one of those folders.
    """
    for root in (run_dataset_root(run), data):
        if root:
            outside_dataset(Path(out), Path(out), dataset_folder(root), what)


def check_cache_outside(dataset: Path) -> None:
    """Refuse a cache folder inside the dataset (the scan would see cnnlab's own files).

    Raises:
        ConfigError: ``$CNNLAB_CACHE`` (or its default) is inside ``dataset``.
    """
    root = cache_root()
    if is_inside(root, dataset):
        source = "CNNLAB_CACHE" if os.environ.get("CNNLAB_CACHE") else "CNNLAB_CACHE (default)"
        raise ConfigError(
            f"{source} {root} is inside the dataset folder {dataset}; set CNNLAB_CACHE to a "
            "folder outside it"
        )


def shareable_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A config dict with its file paths cut to their last part, for reports others read."""
    out = copy.deepcopy(tree)
    for section, key in (("data", "root"), ("data", "split_file"), ("model", "weights")):
        part = out.get(section)
        if isinstance(part, dict) and part.get(key):
            part[key] = Path(str(part[key])).name
    if out.get("runs_dir"):
        out["runs_dir"] = Path(str(out["runs_dir"])).name
    return out


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Refuse, before any work, an output folder that cannot be created or written.

    Nothing is created: the folder itself, or the nearest folder above it that exists, must be
    a writable directory (``os.access`` also sees read-only file systems, which stop root too).

    Raises:
        OutputError: naming the path, the problem and the option to change.
    """
    path = Path(path).expanduser()
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise OutputError(f"{what} {path}: {base} is a file, not a folder; choose another {what}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {base} is not writable; choose another {what}")
    return path


def free_file_name(path: str | os.PathLike[str]) -> Path:
    """``path`` if nothing is there, else ``stem-2.ext``, ``stem-3.ext``...: for a default
    output name the user did not choose, so a second run keeps the first one's file.

    Example:
        >>> free_file_name("/nonexistent/lr_find.png").name
        'lr_find.png'
    """
    path = Path(path).expanduser()
    for i in range(1, 10_000):
        candidate = path if i == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
    raise OutputError(f"{path}: too many files with this name; pass --out")


def check_writable_file(path: str | os.PathLike[str], what: str, overwrite: bool = False) -> Path:
    """Like :func:`check_writable_dir`, for an output file: its folder must be writable, and
    a file already there is refused unless ``overwrite`` (``--overwrite``), before any work:
    an earlier predictions file or plot is the user's, and losing it silently is not ours
    to decide. Writers replace the file atomically (:mod:`cnnlab.atomic`).

    Raises:
        OutputError: naming the path, the problem and the option to change.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputError(
            f"{what} {path} exists; pass --overwrite to replace it, or choose another file"
        )
    check_writable_dir(path.parent, what)
    return path
