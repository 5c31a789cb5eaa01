"""The app's pages (run by ``app.py`` through ``st.navigation``) and ``pages.ui``, the helpers they share.

Streamlit treats a folder named ``pages/`` beside the entry script as a legacy multipage app until the first
``st.navigation`` call in the process (``PagesManager.uses_pages_directory``). While that flag is set, the script
runner runs ``_mpa_v1`` instead of ``app.py``: it builds a navigation of its own from ``pages/*.py`` (app, game,
lesson, lesson_join, mixer, runs, train, ui) and runs the page of the URL alone — without ``app.py``'s navigation and sidebar. That
happens in a fresh server's first script runs, including those of a second session whose run began before the
flag went off (a first import of this package cannot catch them: the package is imported once per process), and
in every run of Streamlit's AppTest, which resets the flag before each run.

So every page, and ``app.py``, calls :func:`use_app_navigation` first. In a legacy run it runs ``app.py`` in
the caller's place, within the same run (its navigation and sidebar, then the page of the URL through
``st.navigation``), and stops the legacy run there; a rerun instead would lose a button click of that run.

This leans on Streamlit internals (``PagesManager.uses_pages_directory`` and ``script_runner._mpa_v1``, as of
Streamlit 1.67); if a later release drops them, the guard does nothing (``tests/test_browser.py`` visits a deep
link of a fresh server first, and ``tests/test_app_navigation.py`` checks that a page AppTest runs gets the
sidebar, so both would notice).
"""

from __future__ import annotations

import sys
import threading
import types

try:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx, script_runner
except ImportError:  # a Streamlit without the internals: nothing to switch off
    PagesManager = script_runner = get_script_run_ctx = None

_inside = threading.local()  # set while app.py runs in place of a legacy run's page (the page then runs as usual)


def in_legacy_run() -> bool:
    """True when Streamlit runs this script run as a legacy pages-folder app (``_mpa_v1`` on the call stack, or
    the flag that makes the runner call it still set)."""
    if PagesManager is not None and PagesManager.uses_pages_directory:
        return True
    legacy = getattr(getattr(script_runner, "_mpa_v1", None), "__code__", None)
    frame = sys._getframe(1)
    while legacy is not None and frame is not None:
        if frame.f_code is legacy:
            return True
        frame = frame.f_back
    return False


def use_app_navigation() -> None:
    """Call first in every page and in ``app.py``: in a legacy run, run ``app.py`` in the caller's place (its
    navigation and sidebar, then the URL's page through ``st.navigation``) and stop there; otherwise do nothing.

    ``app.py`` itself runs in its own place too when it is the legacy navigation's main page: its page then runs
    inside the ``app.py`` run in place, which lets it through, rather than running ``app.py`` once more."""
    if PagesManager is None or not in_legacy_run():
        return
    PagesManager.uses_pages_directory = False  # the runner's next runs go straight to app.py
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or getattr(_inside, "app", False):
        return  # not in a script run, or already inside app.py run in place: the page runs as usual
    import streamlit as st

    main = str(ctx.pages_manager.main_script_path)
    module = types.ModuleType("__main__")
    module.__dict__["__file__"] = main
    _inside.app = True
    try:
        exec(ctx.pages_manager.get_page_script_byte_code(main), module.__dict__)  # noqa: S102 (app.py, as Streamlit runs it)
    finally:
        _inside.app = False
    st.stop()  # the legacy run's page has been drawn by app.py: the rest of it must not run a second time


if PagesManager is not None:  # the script runs that start after this first import need no legacy mode
    PagesManager.uses_pages_directory = False
