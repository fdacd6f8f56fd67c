"""``cnnlab app``: a Streamlit web app over cnnlab's Python API.

The pages in :mod:`cnnlab.app.views` only lay out widgets and show results; reading runs,
checking uploads and predicting happen in plain functions (here and in the rest of cnnlab) that
the tests call directly. :mod:`cnnlab.app.serve` starts the Streamlit server; the server reads
its settings (runs folder, browsable folders, upload limit) from environment variables that
the launcher sets (:mod:`cnnlab.app.settings`).
"""
