"""Search spaces: which config keys a tune samples, over which ranges, and when.

A space is a YAML file (or a built-in: ``cnn``, ``train``, ``transfer``, ``head``, which are
such files in ``cnnlab/tuning/spaces/``)::

    set:                                  # values every trial shares
      model.name: cnn
      model.cnn.filters: [32, 64]
    params:                               # searched keys, in the order they are sampled
      train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
      model.cnn.filters[0]: {type: int, low: 8, high: 64, step: 8}   # one item of a list
      train.optimizer: {type: categorical, choices: [adam, sgd]}
      train.momentum: {type: float, low: 0.5, high: 0.99, when: {train.optimizer: sgd}}

``when`` makes an entry conditional: it is sampled only when an earlier entry took one of the
listed values. Every entry is checked before the first trial (the key exists, the range is
sane, each bound and choice is a value the config accepts), and an error names the entry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config import Config, dotted, load_config, parse_override, read_yaml
from cnnlab.errors import CnnlabError, ConfigError

BUILTIN_DIR = Path(__file__).parent / "spaces"
TYPES = ("int", "float", "categorical")
_FIELDS = {"type", "low", "high", "step", "log", "choices", "when"}
_KEY = re.compile(r"^(?P<name>[A-Za-z_][\w.]*?)(?:\[(?P<index>\d+)\])?$")
# Keys a trial may not search: they would change the data or where runs go.
NOT_SEARCHED = {
    "data.root": "every trial uses the same dataset",
    "data.split_file": "the tune saves one split and every trial uses it",
    "data.val_fraction": "the tune saves one split and every trial uses it",
    "data.test_fraction": "the tune saves one split and every trial uses it",
    "data.drop_small_classes": "the tune saves one split and every trial uses it",
    "train.epochs": "trials train for --epochs; pruning stops the weak ones early",
    "runs_dir": "trials go inside the tune folder",
    "name": "trial names are chosen by the tune",
}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def split_key(key: str) -> tuple[str, int | None]:
    """``model.cnn.filters[1]`` -> ``("model.cnn.filters", 1)``; ``train.lr`` -> index None."""
    match = _KEY.match(key)
    if match is None:
        raise ConfigError(f"'{key}' is not a config key (example: train.lr or filters[0])")
    index = match.group("index")
    return match.group("name"), None if index is None else int(index)


@dataclass(frozen=True)
class Param:
    """One searched entry of a space."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)

    def active(self, sampled: dict[str, Any]) -> bool:
        """Whether this entry is sampled, given the values sampled before it."""
        return all(k in sampled and sampled[k] in vals for k, vals in self.when.items())

    def suggest(self, trial: Any) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def candidates(self) -> list[Any]:
        """The values checked against the config before any trial: bounds or every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    def grid_values(self) -> list[Any]:
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        raise ConfigError(
            f"--sampler grid: entry '{self.key}' is a float range; a grid needs a finite list "
            "(make it categorical with choices)"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.step is not None:
                out["step"] = self.step
            if self.log:
                out["log"] = True
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out


@dataclass
class Space:
    """A validated search space."""

    name: str
    fixed: dict[str, Any]
    params: list[Param]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample every active entry for an Optuna trial; returns entry key -> value."""
        sampled: dict[str, Any] = {}
        for param in self.params:
            if param.active(sampled):
                sampled[param.key] = param.suggest(trial)
        return sampled

    def config_values(self, sampled: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        """Dotted config values of a trial: the space's ``set``, the user's values ``base``
        (which win over ``set``), and the sampled entries (list items folded into lists)."""
        values = {**self.fixed, **base}
        for key, value in sampled.items():
            name, index = split_key(key)
            if index is None:
                values[name] = value
                continue
            current = values[name] if name in values else default_value(name)
            if not isinstance(current, list) or index >= len(current):
                raise ConfigError(
                    f"space {self.name}: entry '{key}': {name} is {current!r}, which has no "
                    f"item {index}; set {name} to a list of {index + 1} or more in 'set:'"
                )
            items = list(current)
            items[index] = value
            values[name] = items
        return values

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def to_dict(self) -> dict[str, Any]:
        return {"set": dict(self.fixed), "params": {p.key: p.to_dict() for p in self.params}}

    def check(self, base: dict[str, Any]) -> None:
        """Build a config with each bound and choice of each entry; an error names the entry.

        Raises:
            ConfigError: a bad value, with the space and entry named.
        """
        for param in self.params:
            for value in param.candidates():
                try:
                    load_config(values=self.config_values({param.key: value}, base))
                except CnnlabError as exc:
                    raise ConfigError(
                        f"space {self.name}: entry '{param.key}': value {value!r} is refused: {exc}"
                    ) from None


def default_value(name: str) -> Any:
    """The config's default for a dotted key."""
    node: Any = Config().model_dump(mode="json")
    for part in name.split("."):
        node = node[part]
    return node


def load_space(space: str | Path | dict[str, Any]) -> Space:
    """A built-in space by name, a YAML file, or a mapping; validated (not yet checked
    against the user's values: see :meth:`Space.check`)."""
    if isinstance(space, dict):
        return parse_space(space, "space")
    text = str(space)
    if text in builtin_names():
        return parse_space(read_yaml(BUILTIN_DIR / f"{text}.yaml", "space"), text)
    file = Path(text)
    if not file.is_file() and file.suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"--space {text!r}: not a built-in space ({', '.join(builtin_names())}) nor a YAML file"
        )
    return parse_space(read_yaml(file, "space file"), str(file))


def parse_space(tree: Any, where: str) -> Space:
    """Validate a space mapping (``set:`` and ``params:``)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
        raise ConfigError(f"space {where}: needs a 'params:' mapping of config keys to ranges")
    unknown = set(tree) - {"set", "params"}
    if unknown:
        raise ConfigError(f"space {where}: unknown section(s) {', '.join(sorted(unknown))}")
    fixed = dotted(tree.get("set") or {})
    for key, value in fixed.items():
        _check_key(key, where, f"set '{key}'")
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parse_override(f"{key}={text}")
    params: list[Param] = []
    for key, raw in tree["params"].items():
        params.append(_param(str(key), raw, where, {p.key: p for p in params}))
    if not params:
        raise ConfigError(f"space {where}: 'params:' is empty, nothing to search")
    return Space(where, fixed, params)


def _check_key(key: str, where: str, entry: str) -> None:
    name, _ = split_key(key)
    try:
        parse_override(f"{name}=0")
    except ConfigError as exc:
        raise ConfigError(f"space {where}: {entry}: {exc}") from None
    if name in NOT_SEARCHED and entry.startswith("entry"):
        raise ConfigError(f"space {where}: {entry}: {name} cannot be searched: "
                          f"{NOT_SEARCHED[name]}")  # fmt: skip


def _param(key: str, raw: Any, where: str, earlier: dict[str, Param]) -> Param:
    entry = f"entry '{key}'"
    _check_key(key, where, entry)

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"space {where}: {entry}: {msg}")

    if not isinstance(raw, dict):
        raise bad("expected a mapping such as {type: float, low: 0.001, high: 0.1}")
    extra = set(raw) - _FIELDS
    if extra:
        raise bad(f"unknown field(s) {', '.join(sorted(extra))} (allowed: {sorted(_FIELDS)})")
    kind = raw.get("type")
    if kind not in TYPES:
        raise bad(f"type must be one of {', '.join(TYPES)}, got {kind!r}")
    when = _when(raw.get("when"), earlier, bad)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("a categorical entry needs a non-empty 'choices:' list")
        if len({repr(c) for c in choices}) != len(choices):
            raise bad("a choice is listed twice")
        return Param(key, kind, choices=tuple(choices), when=when)
    return _range(key, kind, raw, when, bad)


def _range(key: str, kind: str, raw: dict, when: dict, bad: Any) -> Param:
    low, high, step, log = raw.get("low"), raw.get("high"), raw.get("step"), raw.get("log", False)
    number = int if kind == "int" else (int, float)
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            raise bad(f"'{name}' must be {'an integer' if kind == 'int' else 'a number'}")
    if low > high:
        raise bad(f"low {low} is greater than high {high}")
    if not isinstance(log, bool):
        raise bad("'log' must be true or false")
    if log and low <= 0:
        raise bad(f"a log range needs low > 0, got {low}")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise bad(f"'step' must be a positive {'integer' if kind == 'int' else 'number'}")
        if log:
            raise bad("'step' and 'log' cannot be combined")
    if kind == "float":
        low, high = float(low), float(high)
        step = None if step is None else float(step)
    return Param(key, kind, low, high, step, log, when=when)


def _when(raw: Any, earlier: dict[str, Param], bad: Any) -> dict[str, tuple]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise bad("'when' must map an earlier entry to its value(s), e.g. {model.head: mlp}")
    out: dict[str, tuple] = {}
    for key, values in raw.items():
        if key not in earlier:
            raise bad(f"'when' names {key!r}, which is not an entry listed before this one")
        vals = tuple(values) if isinstance(values, list) else (values,)
        other = earlier[key]
        if other.type == "categorical":
            wrong = [v for v in vals if v not in other.choices]
            if wrong:
                raise bad(f"'when' {key}: {wrong[0]!r} is not one of its choices")
        out[key] = vals
    return out
