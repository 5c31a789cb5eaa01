"""The app's pages (run by ``app.py`` through ``st.navigation``) and ``pages.ui``, the helpers they share.

Streamlit treats a folder named ``pages/`` beside the entry script as a legacy multipage app until the first
``st.navigation`` call in the process. On a freshly started server, a first visit to a deep link
(``/game``, ``/mixer?a=1&b=2``) would therefore run the page file alone — without ``app.py``'s navigation and
sidebar. Every page imports this package first, so the first import switches that legacy mode off and, when it
happens inside such a page run, restarts the run, which now goes through ``app.py`` as intended.

This leans on a Streamlit internal (``PagesManager.uses_pages_directory``, Streamlit 1.4x); if a later release
drops it, the guard below does nothing and only that first deep-link visit of a fresh server is affected
(``tests/test_browser.py`` visits a deep link first, so it notices).
"""

try:
    from streamlit.runtime.pages_manager import PagesManager
except ImportError:  # a Streamlit without the internal: nothing to switch off
    PagesManager = None

if PagesManager is not None and getattr(PagesManager, "uses_pages_directory", False):
    PagesManager.uses_pages_directory = False
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is not None:
        import streamlit as st

        st.rerun()
