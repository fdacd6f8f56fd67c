"""Objects shared by every visitor of one app server (Streamlit's resource cache)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from cnnlab.predict import Predictor


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def get_predictor(run_dir: str) -> Predictor:
    """The run's :class:`~cnnlab.predict.Predictor`, built once per server and shared.

    Loading a model costs seconds (torch, timm, weights); every later prediction from any
    session reuses it. Inference only reads the model, so sessions may share it. The server's
    console says when a model is loaded, so an operator (and the load test) can see it
    happens once.
    """
    from cnnlab.predict import Predictor

    start = time.perf_counter()
    predictor = Predictor(run_dir)
    took = time.perf_counter() - start
    print(f"cnnlab app: loaded run {Path(run_dir).name} ({took:.1f} s)", file=sys.stderr)
    return predictor
