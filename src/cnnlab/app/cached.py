"""Objects shared by every visitor of one app server (Streamlit's resource cache)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:
    from cnnlab.explain.cam import Explainer


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def get_predictor(run_dir: str) -> Any:
    """The folder's predictor, built once per server and shared: a run's
    :class:`~cnnlab.predict.Predictor` or an ensemble's ``EnsemblePredictor``
    (:func:`cnnlab.predict.load_predictor`, as ``cnnlab predict`` opens either).

    Loading a model costs seconds (torch, timm, weights); every later prediction from any
    session reuses it. Inference only reads the model, so sessions may share it. The server's
    console says when a model is loaded, so an operator (and the load test) can see it
    happens once.
    """
    from cnnlab.predict import load_predictor

    start = time.perf_counter()
    predictor = load_predictor(run_dir)
    took = time.perf_counter() - start
    print(f"cnnlab app: loaded run {Path(run_dir).name} ({took:.1f} s)", file=sys.stderr)
    return predictor


@st.cache_resource(show_spinner="Preparing Grad-CAM...", max_entries=2)
def get_explainer(run_dir: str) -> tuple[Explainer, threading.Lock]:
    """A run's Grad-CAM :class:`~cnnlab.explain.cam.Explainer` (what ``cnnlab explain`` uses)
    and the lock that lets one CAM pass run at a time.

    The explainer gets its own copy of the model: a CAM pass hooks a layer and turns
    gradients on, which must not touch the model other sessions are predicting with, and two
    passes at once would read each other's hooked activations.
    """
    from cnnlab.explain.cam import Explainer

    return Explainer(run_dir, method="gradcam"), threading.Lock()
