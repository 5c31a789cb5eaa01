"""cifarmix — the Streamlit entry point: navigation over the five pages and the sidebar they share.

Start it with ``streamlit run app.py`` (offline: set ``CIFARMIX_DATA`` to ``cifar-10-python.tar.gz`` first).
"""

import streamlit as st

from pages import ui, use_app_navigation

use_app_navigation()  # first (see pages/__init__.py)

st.set_page_config(page_title="cifarmix — mixed CIFAR-10", page_icon="🔀", layout="wide")

page = st.navigation([
    st.Page(ui.PAGE_MIXER, title="Mixer", icon=":material/palette:", default=True),
    st.Page(ui.PAGE_GAME, title="Game", icon=":material/sports_esports:"),
    st.Page(ui.PAGE_LESSON, title="Lesson", icon=":material/school:"),
    st.Page(ui.PAGE_TRAIN, title="Train", icon=":material/model_training:"),
    st.Page(ui.PAGE_RUNS, title="Runs", icon=":material/monitoring:"),
])
ui.require_home()  # an unusable CIFARMIX_HOME or run store: one message, not a traceback on every page
ui.data_status()  # CIFAR-10 is loaded once per server; the first visitor sees its spinner here, not in the sidebar
ui.sidebar()
page.run()
