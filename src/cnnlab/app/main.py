"""The app's entry script (``streamlit run``): page setup and navigation, nothing else."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="cnnlab", layout="wide")
PAGES = [
    st.Page("views/predict.py", title="Predict", icon=":material/image_search:", default=True),
    st.Page("views/runs.py", title="Runs", icon=":material/leaderboard:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/studies.py", title="Studies and tuning", icon=":material/science:"),
    st.Page("views/data.py", title="Data", icon=":material/folder_open:"),
]
st.navigation(PAGES).run()
