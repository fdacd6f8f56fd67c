"""One typed configuration with every default in one place.

Loaded from YAML and overridden by ``KEY=VALUE`` pairs with dotted keys
(``train.lr=3e-4``). Unknown keys and wrong types fail before any work starts, naming the
closest valid key and the expected type.

Example:
    >>> cfg = load_config(overrides=["train.epochs=3", "model.name=basenet"])
    >>> cfg.train.epochs
    3
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cnnlab.errors import ConfigError
from cnnlab.paths import expand_home

Tristate = Literal["auto", "true", "false"]
AugmentPreset = Literal["none", "light", "standard", "strong"]
Activation = Literal["relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh"]
OptimizerName = Literal[
    "sgd", "adam", "adamw", "nadam", "radam", "rmsprop", "adadelta", "adagrad", "asgd"
]
SchedulerName = Literal[
    "none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau", "warmup"
]
# What the engine logs each epoch, so what train.monitor can pick the best epoch by.
MONITORS = (
    "val/macro_f1", "val/accuracy", "val/loss", "train/macro_f1", "train/accuracy", "train/loss",
)  # fmt: skip
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# Lightning strategy names cnnlab runs with (tests check each is in Lightning's registry).
STRATEGIES = (
    "auto", "ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false",
    "fsdp", "fsdp_cpu_offload", "deepspeed", "deepspeed_stage_1", "deepspeed_stage_2",
    "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload",
    "single_device",
)  # fmt: skip


def _choice(what: str, value: str, valid: tuple[str, ...]) -> str:
    """``value`` if valid, else a ValueError naming the closest valid choice."""
    if value in valid:
        return value
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ValueError(f"unknown {what} '{value}'; {hint}valid: {', '.join(valid)}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    root: str | None = None  # dataset folder (ROOT/CLASS/*, ROOT/{train,val,test}/...) or CSV
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)  # share of each class held out for val
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)  # share of each class held out for test
    split_seed: int = 42  # seeds the train/val/test split (never changed by train.seed)
    split_file: str | None = None  # a split.csv from an earlier run: reuse it exactly
    drop_small_classes: bool = False  # drop classes too small to split (or emptied by exclude)
    exclude: str | None = None  # CSV with a path column (e.g. issues.csv): files left out
    min_image_side: int = Field(4, ge=1)  # images smaller than this (px) are skipped "too small"
    max_pixels: int = Field(89_478_485, ge=1)  # decompression-bomb guard (Pillow's default)

    _home = field_validator("root", "split_file", "exclude")(expand_home)
    max_file_mb: float = Field(256.0, gt=0.0)  # larger files (MiB) are skipped, never read
    allow_outside_paths: bool = False  # let CSV manifest paths leave the manifest's folder
    img_size: int | None = Field(None, ge=8, le=1024)  # model input side (px); None: model's own
    channels: Literal[1, 3] | None = None  # input channels; None: 3 (grey images replicated)
    crop_pct: float = Field(1.0, gt=0.0, le=1.0)  # eval centre crop = img_size / crop_pct resize
    normalize: bool = True  # standardise inputs by mean/std; false: pixels only scaled to 0..1
    cache: Literal["auto", "memory", "disk", "off"] = "auto"  # auto: disk, reused by later runs
    num_workers: int = Field(0, ge=0)  # DataLoader workers for decoding (cache=off only)
    augment: AugmentPreset = "light"  # none | light (flip+shift) | standard | strong
    hflip: bool | None = None  # random horizontal flip; None: as the preset says
    vflip: bool | None = None  # random vertical flip
    shift: float | None = Field(None, ge=0.0, le=0.5)  # max translation, fraction of the side
    zoom: float | None = Field(None, ge=0.0, le=0.9)  # max zoom in/out, fraction
    rotation: float | None = Field(None, ge=0.0, le=180.0)  # max rotation, degrees
    shear: float | None = Field(None, ge=0.0, le=45.0)  # max shear, degrees
    brightness: float | None = Field(None, ge=0.0, le=1.0)  # max brightness jitter, fraction
    contrast: float | None = Field(None, ge=0.0, le=1.0)  # max contrast jitter, fraction
    mixup: float = Field(0.0, ge=0.0)  # mixup alpha; 0 switches it off
    cutmix: float = Field(0.0, ge=0.0)  # cutmix alpha; 0 switches it off
    audit: bool = True  # run the quick data audit (duplicates, leakage) before training


class CNNSpec(_Section):
    """The search space people tune for a CNN built from scratch (model ``cnn``)."""

    filters: list[int] = Field(default_factory=lambda: [32, 64, 128])  # filters per block
    convs_per_block: int = Field(2, ge=1, le=8)  # conv layers in each block
    kernel_size: int | list[int] = 3  # one size for all blocks, or one per block
    activation: Activation = "relu"  # activation after every conv and hidden dense layer
    batch_norm: bool = True  # batch norm after every conv
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # dropout after each block
    pooling: Literal["max", "avg"] = "max"  # down-sampling at the end of each block
    global_pool: Literal["avg", "max", "flatten"] = "avg"  # how the feature map meets the head
    hidden_units: int = Field(0, ge=0)  # dense layer before the classifier; 0 = none


class ModelConfig(_Section):
    name: str = "cnn"  # any name from `cnnlab models`: our CNNs or a timm model
    mode: str | None = None  # scratch|frozen|finetune|partial:N|staged; None: by model kind
    pretrained: Literal["auto", "true", "false"] = "auto"  # auto: pretrained unless scratch
    weights: str | None = None  # a .safetensors/.pth file with pretrained weights
    head: Literal["linear", "mlp", "logreg", "svm"] = "linear"  # classifier on the backbone
    head_hidden: int | list[int] = 256  # mlp head's hidden units; a list: one layer each; 0: none
    head_activation: Activation = "relu"  # activation after each hidden layer of the mlp head
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # dropout after each hidden layer, before fc
    cnn: CNNSpec = Field(default_factory=CNNSpec)  # architecture of model `cnn`

    _home = field_validator("weights")(expand_home)

    @field_validator("head_hidden", mode="before")
    @classmethod
    def _check_head_hidden(cls, value: Any) -> Any:
        # checked here, before pydantic tries int then list[int] and reports both failures
        number = isinstance(value, int) and not isinstance(value, bool)
        if number and value >= 0:
            return value
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        ):
            return value
        raise ValueError(
            "expected the units of one hidden layer (e.g. 256), a list with the units of each "
            "(e.g. [512,256]; each a positive whole number), or 0 for no hidden layer"
        )

    @field_validator("mode")
    @classmethod
    def _check_mode(cls, value: str | None) -> str | None:
        if value is None or value in {"scratch", "frozen", "finetune", "staged"}:
            return value
        if value.startswith("partial:") and value.split(":", 1)[1].isdigit():
            return value
        raise ValueError("expected scratch, frozen, finetune, staged or partial:N (N stages)")


class TrainConfig(_Section):
    epochs: int = Field(15, ge=1)  # passes over the training split
    batch_size: int = Field(64, ge=1)  # images per optimisation step; if set, used as given
    min_steps: int = Field(100, ge=0)  # fewer steps than this: default batch lowered; 0: off
    optimizer: OptimizerName = "sgd"  # optimizer
    lr: float | None = Field(None, gt=0.0)  # peak learning rate; None: the optimizer's default
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD / RMSprop momentum
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = Field(5e-4, ge=0.0)  # L2 penalty (decoupled for AdamW)
    l1: float = Field(0.0, ge=0.0)  # L1 penalty on weights, added to the loss
    grad_clip: float | None = Field(None, gt=0.0)  # clip the gradient norm to this
    scheduler: SchedulerName = "onecycle"  # learning-rate schedule
    warmup_epochs: int = Field(0, ge=0)  # linear warm-up before cosine / warmup schedules
    step_size: int = Field(10, ge=1)  # epochs between decays (step)
    milestones: list[int] = Field(default_factory=lambda: [30, 60])  # epochs (multistep)
    gamma: float = Field(0.1, gt=0.0, le=1.0)  # decay factor (step, multistep, exponential)
    plateau_patience: int = Field(3, ge=0)  # epochs without progress before reducing the lr
    loss: Literal["ce", "focal"] = "ce"  # cross entropy or focal loss
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)  # cross-entropy label smoothing
    focal_gamma: float = Field(2.0, ge=0.0)  # focusing parameter of the focal loss
    class_weights: Literal["none", "auto"] = "none"  # auto: inverse class frequency
    monitor: str = "val/macro_f1"  # metric that picks the best epoch and stops early
    early_stopping: bool = False  # stop when `monitor` stops improving
    patience: int = Field(5, ge=1)  # epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0.0)  # smallest change that counts as improvement
    freeze_epochs: int = Field(1, ge=0)  # staged mode: epochs with the backbone frozen
    backbone_lr_mult: float = Field(1.0, gt=0.0)  # backbone lr = lr x this (fine-tuning)
    freeze_bn_stats: Tristate = "auto"  # keep pretrained BN statistics; auto: < 30-step fine-tunes
    frozen_views: int = Field(1, ge=1)  # frozen mode: augmented views per train image (1: none)
    seed: int = 42  # seeds weights, batches and augmentation (the split: data.split_seed)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"  # auto: bf16 if native
    channels_last: Literal["auto", "true", "false"] = "auto"  # memory format for conv nets
    compile: bool = False  # torch.compile the model
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: int | str = "auto"  # number of devices, or "auto"
    strategy: str = "auto"  # auto | ddp | ddp_spawn ... (passed to Lightning)
    num_nodes: int = Field(1, ge=1)  # machines for multi-node DDP
    max_time: float | None = Field(None, gt=0.0)  # time budget in seconds; stops cleanly

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        if value.startswith("ddp_spawn"):
            # Spawned workers get the cached image tensor through duplicated file descriptors,
            # which Python refuses; "ddp" runs each rank as its own process instead.
            raise ValueError("ddp_spawn is not supported; use train.strategy=ddp")
        return _choice("strategy", value, STRATEGIES)

    @field_validator("monitor")
    @classmethod
    def _check_monitor(cls, value: str) -> str:
        return _choice("monitor", value, MONITORS)

    @field_validator("accelerator")
    @classmethod
    def _check_accelerator(cls, value: str) -> str:
        return _choice("accelerator", value, ACCELERATORS)

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, value: int | str) -> int | str:
        # Lightning takes a count (-1: all), "auto", or device indices such as "0,1".
        if isinstance(value, int):
            if value >= 1 or value == -1:
                return value
            raise ValueError("expected a device count >= 1, -1 (all devices) or auto")
        if value == "auto" or re.fullmatch(r"-1|\d+(,\d+)*,?", value.strip()):
            return value
        return _choice("devices value", value, ("auto",))


class EvalConfig(_Section):
    tta: Literal["auto", "true", "false"] = "auto"  # flip TTA; auto: hflip-trained, checked on val
    top_k: int = Field(5, ge=1)  # k of the top-k accuracy
    ece_bins: int = Field(15, ge=2)  # bins of the calibration error and reliability diagram
    worst_mistakes: int = Field(16, ge=0)  # images in the gallery of worst mistakes
    plot_processes: int = Field(0, ge=0, le=8)  # processes drawing plots; 0: a core each, up to 4
    explain: bool = True  # report: Grad-CAM galleries and a 2-D embedding (docs/explain.md)
    embedding: Literal["pca", "tsne"] = "pca"  # projection of that embedding; tsne is slower


class TrackConfig(_Section):
    backend: Literal["auto", "mlflow", "wandb", "none"] = "auto"  # auto: mlflow or $CNNLAB_TRACK
    uri: str | None = None  # MLflow URI (None: sqlite:///<runs_dir>/mlflow.db); wandb: a folder
    experiment: str = "cnnlab"  # MLflow experiment (W&B project) the runs are logged under
    # shorter runs are logged when they end, so their training never shares the CPU with the
    # tracker's start (~15 s of a 2-core machine's training, bench/RESULTS.md section 7)
    live_after: float = Field(300.0, ge=0.0)  # s into a run before it is tracked live; 0: at once


class CacheConfig(_Section):
    max_gb: float | None = Field(None, gt=0.0)  # cache budget, GB; None: 1/4 of (cache + free disk)


class Config(_Section):
    name: str | None = None  # run name; None: <model>-<mode>-<time>, the mode as trained
    runs_dir: str = "runs"  # where run folders are created
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    _home = field_validator("runs_dir")(expand_home)  # one folder, whatever wrote the ``~``


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(_valid_keys(sub, key + "."))
    return keys


def dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"mode": "x"}}`` and ``{"model.mode": "x"}`` both become ``{"model.mode": "x"}``.

    >>> dotted({"train": {"lr": 0.1}, "model.mode": "frozen"})
    {'train.lr': 0.1, 'model.mode': 'frozen'}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(dotted(value, name + "."))
        else:
            out[name] = value
    return out


def valid_keys() -> list[str]:
    """All dotted keys a user may set, e.g. ``train.lr``."""
    return _valid_keys(Config)


# Keys that existed once, with what to do instead (a plain "unknown key" would puzzle).
_REMOVED = {
    "eval.split": "the report always covers both val and test; "
    "evaluate one split with `cnnlab eval RUN --split val`",
}


def _suggest(key: str) -> str:
    if key in _REMOVED:
        return f" (removed: {_REMOVED[key]})"
    close = difflib.get_close_matches(key, valid_keys(), n=1, cutoff=0.5)
    if not close:  # a bare field name without its section: look at the last part only
        tails = {k.rsplit(".", 1)[-1]: k for k in valid_keys()}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.7)
        close = [tails[hit[0]]] if hit else []
    return f"; did you mean '{close[0]}'?" if close else ""


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE`` and read VALUE as a YAML scalar (never ``eval``)."""
    if "=" not in text:
        raise ConfigError(f"'{text}' is not KEY=VALUE (example: train.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if key not in valid_keys():
        raise ConfigError(f"unknown config key '{key}'{_suggest(key)}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"'{key}': cannot read value '{raw}': {exc}") from None
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        value = value.lower() == "true"
    return key, value


def _describe(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown config key '{key}'{_suggest(key)}"
    got = err.get("input")
    return f"'{key}' = {got!r}: {err['msg'].removeprefix('Value error, ')}"


def build_config(tree: dict[str, Any]) -> Config:
    """Validate a nested dict into a :class:`Config`, with readable errors."""
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None


# YAML reads `true` as a bool; these tri-state fields take the strings "auto"/"true"/"false".
_TRISTATE = {
    ("model", "pretrained"), ("train", "channels_last"), ("train", "freeze_bn_stats"),
    ("eval", "tta"),
}  # fmt: skip


def _tristate_to_str(tree: dict[str, Any]) -> None:
    for section, key in _TRISTATE:
        value = tree.get(section, {}).get(key) if isinstance(tree.get(section), dict) else None
        if isinstance(value, bool):
            tree[section][key] = "true" if value else "false"
    train = tree.get("train")
    if isinstance(train, dict) and isinstance(train.get("precision"), int):
        train["precision"] = str(train["precision"])


def read_yaml(file: Path, what: str) -> Any:
    """A YAML file's content (``{}`` when empty); a missing or broken file is a ConfigError."""
    if not file.is_file():
        raise ConfigError(f"{what} not found: {file}")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Config:
    """Read the configuration: defaults, then a YAML file, then dotted values, then overrides.

    Args:
        path: a YAML file with any subset of the sections.
        overrides: ``KEY=VALUE`` strings from the command line.
        values: dotted keys to values, as the Python API and CLI flags pass them.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        loaded = read_yaml(file, "config file")
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{file}: expected a mapping of sections, got {type(loaded).__name__}"
            )
        tree = loaded
    for key, value in (values or {}).items():
        if key not in valid_keys():
            raise ConfigError(f"unknown config key '{key}'{_suggest(key)}")
        _set_dotted(tree, key, value)
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    _tristate_to_str(tree)
    return build_config(tree)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (the run folder's ``config.yaml``)."""
    from cnnlab.atomic import atomic_write_text

    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)
