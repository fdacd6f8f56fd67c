"""The built-in studies (``--recipe NAME``): the comparisons in the seed reports, one word each.

Each recipe returns its cells, the values every cell shares, and how cells are compared.
``--vary KEY=...`` on top of a recipe replaces the recipe's own list for that key (``--recipe
lr --vary train.lr=1e-3,3e-3``) or adds a new axis; ``KEY=VALUE`` sets a value for every cell
(``--recipe lr model.name=basenet``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.studies.plan import Cell


@dataclass
class Recipe:
    cells: list[Cell]
    base: dict[str, Any] = field(default_factory=dict)
    compare: str = "best"
    axes: dict[str, list[Any]] = field(default_factory=dict)  # crossed with the cells


LRS = [1e-4, 5e-4, 1e-3, 1e-2]
SCHEDULES = ["onecycle", "none"]  # scheduler on (the default one-cycle) and off
OPTIMIZERS = ["sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad", "adadelta"]  # seed 002
MODELS = ["vanilla_cnn", "basenet", "cnn", "alexnet", "resnet18", "efficientnet_lite0"]
MODELS_IMG_SIZE = 64  # one input side for every model, so the table compares architectures
TRANSFER_BACKBONE = "efficientnet_lite0"  # the backbone with ImageNet weights offline
BASENET = {  # seed 004's BaseNet: conv5-6, pool, conv5-16, pool, flatten, dense 50
    "model.name": "cnn",
    "model.cnn.filters": [6, 16],
    "model.cnn.kernel_size": 5,
    "model.cnn.convs_per_block": 1,
    "model.cnn.batch_norm": False,
    "model.cnn.dropout": 0.0,
    "model.cnn.global_pool": "flatten",
    "model.cnn.hidden_units": 50,
    "data.normalize": False,
    "data.augment": "none",
    "train.optimizer": "sgd",
    "train.lr": 0.01,
    "train.scheduler": "none",
    "train.early_stopping": False,
}


def _lr(base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    own = {
        "train.lr": axes.pop("train.lr", LRS),
        "train.scheduler": axes.pop("train.scheduler", SCHEDULES),
    }
    return Recipe([], axes=own)


def _optimizers(base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    # train.lr stays unset: each optimizer starts from its own usual learning rate.
    return Recipe([], axes={"train.optimizer": axes.pop("train.optimizer", OPTIMIZERS)})


def model_cell(name: str) -> dict[str, Any]:
    """Fine-tune from ImageNet weights where they exist offline, else train from scratch."""
    from cnnlab.models.registry import model_info

    pretrained = model_info(name).offline_weights
    return {"model.name": name, "model.mode": "finetune" if pretrained else "scratch"}


def _models(base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    defaults = {} if "data.img_size" in base else {"data.img_size": MODELS_IMG_SIZE}
    names = axes.pop("model.name", MODELS)
    return Recipe([Cell("", str(n), model_cell(str(n))) for n in names], base=defaults)


def _transfer(base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    from cnnlab.models.registry import model_info

    name = base.get("model.name", TRANSFER_BACKBONE)
    if not model_info(name).offline_weights and not base.get("model.weights"):
        raise ConfigError(
            f"the transfer recipe needs pretrained weights for {name}, and none are available "
            f"offline; pass model.weights=FILE or use model.name={TRANSFER_BACKBONE}"
        )
    steps = [
        ("scratch", {"model.mode": "scratch", "model.pretrained": "false"}),
        ("frozen + linear head", {"model.mode": "frozen", "model.head": "linear"}),
        ("frozen + logistic regression", {"model.mode": "frozen", "model.head": "logreg"}),
        ("frozen + SVM", {"model.mode": "frozen", "model.head": "svm"}),
        ("partial:1 (last stage trains)", {"model.mode": "partial:1"}),
        ("partial:2 (last two stages)", {"model.mode": "partial:2"}),
        ("staged (head, then all)", {"model.mode": "staged"}),
        ("finetune (all layers)", {"model.mode": "finetune"}),
    ]
    shared = {"model.head": "linear", "model.pretrained": "true"}
    cells = [Cell("", label, {**shared, **values}) for label, values in steps]
    return Recipe(cells, base={"model.name": name})


LADDER_AUGMENT = "standard"  # the preset of the ladder's augment step
LADDER_PATIENCE = 5  # epochs without improvement before the last step stops a run


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _base_label(settings: dict[str, Any]) -> str:
    """The base step's label, naming every training setting it starts from: the config's
    defaults (momentum, weight decay, label smoothing) are not seed 004's plain SGD."""
    opt = str(settings["train.optimizer"])
    words = [f"{'SGD' if opt == 'sgd' else opt} lr {_num(settings['train.lr'])}"]
    if opt == "sgd":
        nesterov = "Nesterov " if settings["train.nesterov"] else ""
        words.append(f"{nesterov}momentum {_num(settings['train.momentum'])}")
    words.append(f"weight decay {_num(settings['train.weight_decay'])}")
    words.append(f"label smoothing {_num(settings['train.label_smoothing'])}")
    return f"base (BaseNet, raw pixels; {', '.join(words)})"


def _augment_label() -> str:
    """``+ augment standard (flip, shift 0.1, ...)``: every knob the preset turns on."""
    from cnnlab.data.transforms import PRESETS

    spec = PRESETS[LADDER_AUGMENT]
    knobs = ["flip"] if spec.hflip else []
    knobs += [f"{k} {_num(getattr(spec, k))}" for k in ("shift", "zoom") if getattr(spec, k)]
    jitter = [k for k in ("brightness", "contrast", "saturation") if getattr(spec, k)]
    strengths = {getattr(spec, k) for k in jitter}
    if len(strengths) == 1:  # the presets jitter all three by one amount
        knobs.append(f"{'/'.join(jitter)} {_num(strengths.pop())}")
    else:
        knobs += [f"{k} {_num(getattr(spec, k))}" for k in jitter]
    return f"+ augment {LADDER_AUGMENT} ({', '.join(knobs)})"


def ladder_steps(epochs: int, settings: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Seed 004's cumulative ladder: each step adds its changes to everything before it.

    ``settings`` are the base step's training settings (for its label). The last step also
    doubles ``train.epochs``, so its label says so: early stopping alone can only shorten
    training (every step already keeps its best epoch), and the report says when it never fired.
    """
    return [
        (_base_label(settings), {}),
        ("+ normalise inputs", {"data.normalize": True}),
        (_augment_label(), {"data.augment": LADDER_AUGMENT}),
        (
            "+ deeper (3 blocks of 2 3x3 convs, 32-64-128 filters)",
            {
                "model.cnn.filters": [32, 64, 128],
                "model.cnn.kernel_size": 3,
                "model.cnn.convs_per_block": 2,
            },
        ),
        ("+ batch norm", {"model.cnn.batch_norm": True}),
        (
            "+ dropout 0.25 (convs and head)",
            {"model.cnn.dropout": 0.25, "model.head_dropout": 0.25},
        ),
        (
            f"+ early stopping (patience {LADDER_PATIENCE}), up to 2x epochs ({2 * epochs})",
            {
                "train.early_stopping": True,
                "train.epochs": 2 * epochs,
                "train.patience": LADDER_PATIENCE,
            },
        ),
    ]


def _ladder(base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    from cnnlab.config import TrainConfig

    defaults = {f"train.{k}": f.default for k, f in TrainConfig.model_fields.items()}
    settings = {**defaults, **BASENET, **base}
    steps = ladder_steps(int(settings["train.epochs"]), settings)
    fixed = sorted({k for _, change in steps for k in change} & set(base) - {"train.epochs"})
    if fixed:
        raise ConfigError(
            f"the ladder's steps set {', '.join(fixed)} themselves; leave them out "
            "(or write your own ladder as a --plan file with compare: previous)"
        )
    # The user's own values (train.lr=..., model.cnn.hidden_units=...) win over BaseNet's.
    cells, values = [], {k: v for k, v in BASENET.items() if k not in base}
    for label, change in steps:
        values = {**values, **change}
        cells.append(Cell("", label, dict(values)))
    return Recipe(cells, compare="previous")


RECIPES: dict[str, Callable[[dict[str, Any], dict[str, list[Any]]], Recipe]] = {
    "lr": _lr,
    "optimizers": _optimizers,
    "models": _models,
    "transfer": _transfer,
    "ladder": _ladder,
}


def build_recipe(name: str, base: dict[str, Any], axes: dict[str, list[Any]]) -> Recipe:
    """The named recipe for the shared values ``base`` (they may pick its model, epochs...).

    ``axes`` are the user's ``--vary`` lists: a recipe takes out the ones that replace its own
    list (``train.lr`` for ``lr``, ``model.name`` for ``models``...); the rest are crossed
    with the recipe's cells by the caller.
    """
    if name not in RECIPES:
        import difflib

        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown recipe '{name}'{hint} (recipes: {', '.join(RECIPES)})")
    return RECIPES[name](base, axes)
