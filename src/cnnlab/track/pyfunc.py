"""A finished run as an MLflow model whose pyfunc flavour is cnnlab's own :class:`Predictor`.

The registered model holds the three files a Predictor reads (``model.json``,
``model.safetensors``, ``classes.json``), so ``mlflow.pyfunc.load_model(...).predict`` and
``mlflow models predict`` preprocess exactly as validation did and use the run's TTA: the
same labels as ``cnnlab predict``. The model is saved as code (``pyfunc_model.py``), never as
a pickle.

Example:
    >>> version, uri, created = register_run("runs/cnn-scratch", "flowers")  # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model("models:/flowers/1")         # doctest: +SKIP
    >>> model.predict(pandas.DataFrame({"path": ["rose.jpg"]}))       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from cnnlab import runs
from cnnlab.errors import CnnlabError

MODEL_FILES = (runs.MODEL_CARD, runs.WEIGHTS, runs.CLASSES)  # what Predictor reads
OUTPUT_COLUMNS = ("path", "label", "prob", "error")
DIGEST_TAG = "cnnlab.weights_sha256"  # on a model version: the sha256 of its model.safetensors


class CnnlabModel(mlflow.pyfunc.PythonModel):
    """Input: a table with a ``path`` column of image files; output: label and probability."""

    def load_context(self, context: Any) -> None:
        from cnnlab.predict import Predictor

        self.predictor = Predictor(context.artifacts["run"])
        self.tta = self.predictor.card.get("tta") is not None  # the run's own TTA

    # model_input has no annotation on purpose: MLflow reads one as an input schema
    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None):
        if isinstance(model_input, pd.DataFrame):
            column = "path" if "path" in model_input.columns else model_input.columns[0]
            paths = [str(p) for p in model_input[column]]
        else:
            paths = [str(p) for p in model_input]
        tta = bool((params or {}).get("tta", self.tta))
        results = self.predictor.predict(paths, top_k=1, tta=tta)
        rows = [
            {
                "path": r.get("path", ""),
                "label": r.get("label", ""),
                "prob": float(r.get("prob", float("nan"))),
                "error": r.get("error", ""),
            }
            for r in results
        ]
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


def _signature(tta: bool) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "path")]),
        outputs=Schema([
            ColSpec("string", "path"), ColSpec("string", "label"),
            ColSpec("double", "prob"), ColSpec("string", "error"),
        ]),
        params=ParamSchema([ParamSpec("tta", "boolean", tta)]),
    )  # fmt: skip


def register_run(
    run_dir: str | Path, name: str, overrides: list[str] | None = None
) -> tuple[str, str, bool]:
    """Log a finished run (if not yet) and register its model under ``name``.

    Idempotent for the same weights: a version of ``name`` whose ``cnnlab.weights_sha256``
    tag is the sha256 of this run's ``model.safetensors`` is reported, not registered again;
    a new version is made only for other weights.

    Returns:
        ``(version, model_uri, created)``, e.g. ``("1", "models:/flowers/1", True)``.

    Raises:
        RunError: ``run_dir`` is not a finished run, or is an ensemble folder.
    """
    from mlflow.tracking import MlflowClient

    from cnnlab.track.content import end_status
    from cnnlab.track.mlflow_store import MlflowStore
    from cnnlab.track.sync import sync_run
    from cnnlab.track.target import (
        TrackingError,
        one_line,
        read_state,
        require_server,
        run_target,
    )

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line, no bars
    _check_not_ensemble(run_dir)
    run = runs.load_run(run_dir)  # a clear error for a folder that is not a finished run
    target = run_target(run.path, overrides)
    require_server(target.uri)
    digest = runs.weights_digest(run.path)
    try:
        end = end_status(run.path, read_state(run.path))
        report = sync_run(MlflowStore(target), run.path, end)
        found = _version_with(MlflowClient(tracking_uri=target.uri), name, digest)
        if found is not None:
            return found, f"models:/{name}/{found}", False
        version = _register(target.uri, run, report.run_id, name, digest)
    except CnnlabError:
        raise
    except Exception as exc:  # MLflow's own, or the HTTP stack's below it
        raise TrackingError(f"{run.path}: not registered in {target.uri}: {one_line(exc)}") from exc
    return version, f"models:/{name}/{version}", True


def _check_not_ensemble(run_dir: str | Path) -> None:
    """Refuse an ensemble folder, before anything is logged (see ``refuse_ensemble``)."""
    from cnnlab.ensemble.folder import refuse_ensemble

    refuse_ensemble(
        run_dir,
        "it cannot be registered as one model (the registered pyfunc is one run's Predictor)",
        "register",
    )


def _version_with(client: Any, name: str, digest: str) -> str | None:
    """The newest version of ``name`` registered from these weights, if any (the name is
    compared here, not in the query: a name may hold any character)."""
    found = client.search_model_versions(f"tags.`{DIGEST_TAG}` = '{digest}'")
    versions = [int(v.version) for v in found if v.name == name]
    return str(max(versions)) if versions else None


def _register(uri: str, run: runs.Run, run_id: str, name: str, digest: str) -> str:
    from cnnlab import __version__

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
            # (MLflow prints "Successfully registered model ..." itself; cnnlab says it once)
            files = Path(tmp) / "run"
            files.mkdir()
            for file in MODEL_FILES:
                shutil.copy2(run.path / file, files / file)
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                    artifacts={"run": str(files)},
                    signature=_signature(run.model_card.get("tta") is not None),
                    pip_requirements=[f"cnnlab=={__version__}"],
                )
            version = mlflow.register_model(info.model_uri, name, tags={DIGEST_TAG: digest})
    finally:
        mlflow.set_tracking_uri(previous)
    return str(version.version)
