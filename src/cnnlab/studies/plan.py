"""A study plan: cells (each a labelled set of config overrides) x training seeds.

Plans come from ``--vary KEY=V1,V2`` (the cross product of the varied keys), from a plan file
(``--plan STUDY.yaml``, cells listed explicitly) or from a recipe (``--recipe NAME``). Every
cell's configuration is built and validated before the first run, so a typo in any cell stops
the study at once with the closest valid key.

A plan file (``study.yaml`` of a finished study is one too)::

    seeds: 3                      # or a list: [0, 1, 2]
    compare: best                 # best: the best cell against every other; previous: a ladder
    set: {train.epochs: 10}       # values every cell shares
    cells:
      - {label: scratch, set: {model.mode: scratch}}
      - {label: frozen, set: {model: {mode: frozen}}}   # nested or dotted keys
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config import Config, dotted, parse_override, read_yaml
from cnnlab.errors import CnnlabError, ConfigError

# Keys a cell may not change: they would give cells different test images or seeds.
_FIXED = {
    "data.root": "the study has one dataset",
    "data.split_file": "the study saves one split and every cell uses it",
    "data.val_fraction": "the study saves one split and every cell uses it",
    "data.test_fraction": "the study saves one split and every cell uses it",
    "data.drop_small_classes": "the study saves one split and every cell uses it",
    "train.seed": "seeds are the study's repeats: use --seeds N",
    "runs_dir": "runs go inside the study folder",
    "name": "run names are chosen by the study",
}
COMPARE = ("best", "previous")


@dataclass
class Cell:
    """One setting of the study: ``values`` (dotted config keys) applied on top of the base."""

    id: str
    label: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything needed to run (or rerun) a study; saved as ``study.yaml``."""

    data: str
    cells: list[Cell]
    seeds: list[int]
    base: dict[str, Any] = field(default_factory=dict)
    compare: str = "best"
    recipe: str | None = None
    command: str = ""

    @property
    def varied(self) -> list[str]:
        """Keys set by any cell, in first-seen order: the columns of results and table."""
        keys: list[str] = []
        for cell in self.cells:
            keys += [k for k in cell.values if k not in keys]
        return keys

    def jobs(self) -> list[tuple[Cell, int]]:
        """(cell, seed) per run, seed-major: every cell's first seed comes first."""
        return [(cell, seed) for seed in self.seeds for cell in self.cells]

    @staticmethod
    def run_name(cell: Cell, seed: int) -> str:
        return f"{cell.id}-seed{seed}"

    def config(self, cell: Cell, seed: int, split_file: Path | None = None) -> Config:
        """The resolved configuration of one run."""
        from cnnlab.api import make_config

        values = {**self.base, **cell.values, "train.seed": seed}
        if split_file is not None:
            values["data.split_file"] = str(split_file)
        try:
            return make_config(self.data, values=values)
        except CnnlabError as exc:
            raise type(exc)(f"cell {cell.id} ({cell.label}): {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "recipe": self.recipe,
            "seeds": list(self.seeds),
            "compare": self.compare,
            "set": dict(self.base),
            "cells": [{"id": c.id, "label": c.label, "set": dict(c.values)} for c in self.cells],
        }


def check_keys(values: dict[str, Any], where: str, fixed: bool = True) -> dict[str, Any]:
    """Validate dotted keys (did-you-mean on typos) and refuse keys a cell may not vary."""
    for key, value in values.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parse_override(f"{key}={text}")  # unknown key -> ConfigError with the closest one
        if fixed and key in _FIXED:
            raise ConfigError(f"{where}: {key} cannot differ between cells: {_FIXED[key]}")
    return values


def split_values(text: str) -> list[str]:
    """``1e-3,1e-2`` -> two values; commas inside brackets (``[32,64]``) stay in one value."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    if any(not p for p in parts):
        raise ConfigError(f"'{text}': empty value in the list (write V1,V2,...)")
    return parts


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    """``["train.lr=1e-3,1e-2", ...]`` -> ``{"train.lr": [0.001, 0.01]}``, keys validated."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--vary '{item}' is not KEY=V1,V2,... (example: train.lr=1e-3,1e-2)")
        key, raw = item.split("=", 1)
        key = key.strip()
        values = [parse_override(f"{key}={v}")[1] for v in split_values(raw)]
        if key in _FIXED:
            raise ConfigError(f"--vary {key}: {_FIXED[key]}")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--vary {key}: a value is listed twice")
        axes[key] = values
    return axes


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values shared by every cell) -> dotted dict, keys validated."""
    return dict(parse_override(item) for item in items)


def _short(key: str, keys: list[str]) -> str:
    tail = key.rsplit(".", 1)[-1]
    return tail if sum(k.rsplit(".", 1)[-1] == tail for k in keys) == 1 else key


def label_for(values: dict[str, Any]) -> str:
    """``lr=0.001, scheduler=none`` from a cell's values."""
    keys = list(values)
    return ", ".join(f"{_short(k, keys)}={_fmt(v)}" for k, v in values.items()) or "base"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def cross(cells: list[Cell], axes: dict[str, list[Any]]) -> list[Cell]:
    """Each cell times every combination of ``axes``; an axis replaces a cell's own key."""
    if not axes:
        return renumber(cells)
    out: list[Cell] = []
    for cell in cells or [Cell("", "", {})]:
        for combo in itertools.product(*axes.values()):
            values = {**cell.values, **dict(zip(axes, combo, strict=True))}
            extra = label_for(dict(zip(axes, combo, strict=True)))
            label = f"{cell.label}, {extra}" if cell.label else extra
            out.append(Cell("", label, values))
    return renumber(out)


def renumber(cells: list[Cell]) -> list[Cell]:
    return [Cell(f"c{i}", c.label, c.values) for i, c in enumerate(cells, start=1)]


def seed_list(seeds: int | list[int], base_seed: int) -> list[int]:
    """``3`` -> three seeds counting up from ``train.seed``; a list is taken as given."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: need at least 1 seed")
        return [base_seed + i for i in range(seeds)]
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds {seeds}: give distinct seeds")
    return out


def read_plan_file(path: str | Path) -> dict[str, Any]:
    """Cells, seeds, compare and shared values of a plan file, validated."""
    file = Path(path)
    return parse_plan(read_yaml(file, "plan file"), str(file))


def parse_plan(tree: Any, where: str = "plan") -> dict[str, Any]:
    """A plan given as a mapping (a parsed plan file, or a dict from Python), validated."""
    raw_cells = tree.get("cells") if isinstance(tree, dict) else None
    if not isinstance(raw_cells, list) or not raw_cells:
        raise ConfigError(
            f"{where}: needs a 'cells:' list, each with a label and its 'set:' values"
        )
    cells = []
    for i, raw in enumerate(raw_cells, start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("set", {}), dict):
            raise ConfigError(f"{where}: cell {i} must be a mapping with 'label' and 'set'")
        values = check_keys(dotted(raw.get("set") or {}), f"{where}: cell {i}")
        cells.append(Cell("", str(raw.get("label") or label_for(values)), values))
    compare = tree.get("compare", "best")
    if compare not in COMPARE:
        raise ConfigError(f"{where}: compare must be one of {', '.join(COMPARE)}, got {compare!r}")
    base = check_keys(dotted(tree.get("set") or {}), f"{where}: set", fixed=False)
    return {"cells": renumber(cells), "seeds": tree.get("seeds"), "compare": compare, "base": base}
