"""Regenerate docs/config.md from the field comments in src/cnnlab/config.py.

Run: .venv/bin/python scripts/gen_config_docs.py   (tests/test_docs.py checks it is current)
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from cnnlab import config

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {
    "Config": "",
    "DataConfig": "data",
    "ModelConfig": "model",
    "CNNSpec": "model.cnn",
    "TrainConfig": "train",
    "EvalConfig": "eval",
    "TrackConfig": "track",
    "CacheConfig": "cache",
}
TITLES = {
    "": "Run",
    "data": "`data`: the dataset, split, cache and augmentation",
    "model": "`model`: architecture, transfer mode and weights",
    "model.cnn": "`model.cnn`: the architecture of model `cnn`",
    "train": "`train`: optimisation, regularisation, precision and devices",
    "eval": "`eval`: final evaluation",
    "track": "`track`: experiment tracking (MLflow); see docs/tracking.md",
    "cache": "`cache`: the size of `$CNNLAB_CACHE`; see docs/scaling.md",
}
HEADER = """# Configuration reference

Every field, its default and what it does. Set them in a YAML file (`--config FILE`) with the
sections as mappings, or on the command line as `KEY=VALUE` with the dotted key
(`train.lr=3e-4`, `model.cnn.filters=[32,64,128]`). Unknown keys and wrong types stop before
any work with the closest valid key. Generated from `src/cnnlab/config.py` by
`scripts/gen_config_docs.py`; a test keeps the two in step.
"""


def _default(text: str) -> str:
    text = text.strip()
    factory = re.search(r"lambda: (.+?)\)$", text)
    if factory:
        return factory.group(1)
    field = re.match(r"Field\(([^,)]+)", text)
    return field.group(1) if field else text


def render() -> str:
    rows: dict[str, list[str]] = {prefix: [] for prefix in TITLES}
    section = None
    for line in (ROOT / "src/cnnlab/config.py").read_text().splitlines():
        if m := re.match(r"class (\w+)\(", line):
            section = SECTIONS.get(m.group(1))
            continue
        m = re.match(r"    (\w+): (.+?) = (.+?)  # (.+)$", line)
        if section is None or not m:
            continue
        name, typ, default, comment = m.groups()
        alias = getattr(config, typ, None)
        if alias is not None and typing.get_origin(alias) is typing.Literal:
            comment += ": " + ", ".join(typing.get_args(alias))
        key = f"{section}.{name}" if section else name
        rows[section].append(f"| `{key}` | `{_default(default)}` | {comment} |")
    parts = [HEADER]
    for prefix, title in TITLES.items():
        parts += [
            f"## {title}",
            "",
            "| key | default | meaning |",
            "|---|---|---|",
            *rows[prefix],
            "",
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "config.md").write_text(render())
