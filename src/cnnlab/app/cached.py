"""Objects shared by every visitor of one app server (Streamlit's resource cache)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from cnnlab.predict import Predictor


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def get_predictor(run_dir: str) -> Predictor:
    """The run's :class:`~cnnlab.predict.Predictor`, built once per server and shared.

    Loading a model costs seconds (torch, timm, weights); every later prediction from any
    session reuses it. Inference only reads the model, so sessions may share it.
    """
    from cnnlab.predict import Predictor

    return Predictor(run_dir)
