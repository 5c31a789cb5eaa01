"""The Game page's lesson box (not a page): joining a lesson by its link (``/game?lesson=CODE``) or by typing its
code, the banner that says which lesson a student plays in, and the lesson a new game is played in.

The joined lesson is kept in the session, and its code in the URL, so a refresh of the page joins it again. Rules
and messages are ``cifarmix.lessons``'; this module only draws them.
"""

from __future__ import annotations


import streamlit as st

from cifarmix import lessons
from cifarmix.store import DATABASE_ERRORS
from pages import ui

JOINED_KEY = "lesson_joined"  # the lesson (a store dict) this session's new games are played in
NOTE_KEY = "lesson_join_note"  # why the last join did not happen (an unknown or closed code), until the next try
TYPED_KEY = "lesson_code_typed"
PARAMETER = lessons.JOIN_PARAMETER


def joined() -> dict | None:
    """The lesson this session plays in: the one of the link (joined once per code), else the one joined before."""
    linked = st.query_params.get(PARAMETER)
    current = st.session_state.get(JOINED_KEY)
    if linked and not (current and _same_code(linked, current["code"])):
        _join(linked)
    elif current and not linked:  # back from another page (its link has no code): a refresh still rejoins
        st.query_params[PARAMETER] = current["code"]
    return st.session_state.get(JOINED_KEY)


def _same_code(text: str, code: str) -> bool:
    try:
        return lessons.normalise_code(text) == code
    except lessons.LessonError:
        return False


def _join(text: str) -> None:
    """Join the lesson whose code is in ``text``; on failure keep the reason for the box and leave the lesson."""
    try:
        lesson = lessons.join_lesson(ui.run_store(), text)
    except (lessons.LessonError, *DATABASE_ERRORS) as error:
        st.session_state[NOTE_KEY] = str(error) if isinstance(error, lessons.LessonError) else (
            f"The lesson cannot be looked up right now ({type(error).__name__}); try again in a moment.")
        st.session_state.pop(JOINED_KEY, None)
        st.query_params.pop(PARAMETER, None)  # said once: the next rerun does not repeat the lookup
        return
    st.session_state[JOINED_KEY] = lesson
    st.session_state.pop(NOTE_KEY, None)
    st.query_params[PARAMETER] = lesson["code"]  # a refresh joins it again


def _join_typed() -> None:
    _join(st.session_state.get(TYPED_KEY) or "")


def leave() -> None:
    st.session_state.pop(JOINED_KEY, None)
    st.session_state.pop(NOTE_KEY, None)
    st.query_params.pop(PARAMETER, None)


def join_box() -> None:
    """In the game's setup: the lesson this student plays in (with a button to leave it), or a box to type a
    code; and why the last code did not join, if it did not."""
    lesson = joined()
    if st.session_state.get(NOTE_KEY):
        st.warning(st.session_state[NOTE_KEY], icon="🎓")
    if lesson is not None:
        columns = st.columns([7, 2], vertical_alignment="center")
        columns[0].success(f"You are playing in the lesson **{ui.escape_markdown(lesson['name'])}** "
                           f"({lessons.shown_code(lesson['code'])}): your games go on its board.", icon="🎓")
        columns[1].button("Leave the lesson", on_click=leave, key="lesson_leave", width="stretch")
        return
    with st.expander("🎓 In a lesson? Type its code", expanded=False):
        columns = st.columns([3, 1], vertical_alignment="bottom")
        columns[0].text_input("Lesson code (on the projector)", key=TYPED_KEY, placeholder="e.g. K7M-Q4P",
                              max_chars=40)
        columns[1].button("Join", on_click=_join_typed, key="lesson_join", width="stretch")


def lesson_for_new_game() -> int | None:
    """The id of the lesson a game started now is played in, if it is still open; a lesson closed since it was
    joined is left (the box says so) and the game goes to the server-wide board."""
    lesson = st.session_state.get(JOINED_KEY)
    if lesson is None:
        return None
    _join(lesson["code"])
    lesson = st.session_state.get(JOINED_KEY)
    return None if lesson is None else lesson["id"]
