"""Lesson: a teacher opens a lesson, shows its join link and QR code on the projector, and watches the class play.

``/lesson``: open a lesson (a name), or watch one by its code. ``/lesson?lesson=CODE``: the lesson's view, which
refreshes itself every ``LIVE_EVERY_S`` seconds (standings, games finished, people against the model per class,
the hardest classes), in type large enough for the back of a room. ``&key=...`` (the teacher's link, which the
page opens right after the lesson is made) adds closing the lesson and the CSV export. The rules, the codes and
the numbers are ``cifarmix.lessons``'; this page only draws them.
"""

from __future__ import annotations

import base64
import html
import os
from urllib.parse import urlsplit

import streamlit as st

from cifarmix import figures, lessons
from cifarmix.store import DATABASE_ERRORS, LESSON_NAME_MAX
from pages import ui, use_app_navigation

use_app_navigation()  # first: a legacy run of this page runs app.py instead

LIVE_EVERY_S = 5
STANDINGS_SHOWN = 10  # rows readable from the back of a room; the CSV has everyone
KEY_PARAMETER = "key"
PUBLIC_URL_ENV = "CIFARMIX_PUBLIC_URL"  # the address students' devices use, when this page's own is local
NAME_KEY = "lesson_new_name"
WATCH_KEY = "lesson_watch_code"

# Projector type: the lesson's own elements only (classes below), so the sidebar and the other pages keep theirs.
STYLE = """<style>
[data-testid="stMainBlockContainer"] {padding-top: 2.5rem;}
.lesson-qr img {width: min(100%, 44vh); min-width: 220px; display: block; image-rendering: pixelated;}
.lesson-code {font-size: clamp(2.4rem, 3.6vw, 4.6rem); font-weight: 800; letter-spacing: 0.08em; line-height: 1.1;
              margin: 0.1rem 0; white-space: nowrap; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
              color: #1C1836;}
.lesson-link {font-size: clamp(1.05rem, 1.2vw, 1.45rem); line-height: 1.3; overflow-wrap: anywhere;}
.lesson-say {font-size: clamp(1.1rem, 1.3vw, 1.5rem); line-height: 1.3; margin: 0.5rem 0 0.1rem 0;}
.lesson-big {font-size: clamp(1.25rem, 1.5vw, 1.7rem); line-height: 1.35; margin: 0.3rem 0;}
.lesson-numbers {display: flex; gap: 0.4rem 1.6rem; flex-wrap: wrap; margin: 0 0 0.6rem 0;}
.lesson-number b {display: block; font-size: clamp(2.2rem, 2.8vw, 3.4rem); line-height: 1.05; color: #5B3FD9;}
.lesson-number span {font-size: clamp(1rem, 1.1vw, 1.3rem); color: #48426a;}
.lesson-hardest {display: flex; flex-wrap: wrap; gap: 0 4rem;}
.lesson-hardest h4 {font-size: clamp(1.2rem, 1.4vw, 1.6rem); margin: 0.4rem 0 0.2rem 0; padding: 0;}
.lesson-hardest ol {font-size: clamp(1.3rem, 1.6vw, 1.9rem); margin: 0 0 0.6rem 0; padding-left: 2rem;}
.lesson-hardest li {margin: 0.1rem 0;}
table.lesson-standings {width: 100%; border-collapse: collapse; font-size: 1.65rem;}
table.lesson-standings th {text-align: left; font-size: 1.1rem; color: #48426a; font-weight: 600;
                           border-bottom: 2px solid #d8d2f3; padding: 0.15rem 0.6rem;}
table.lesson-standings td {padding: 0.2rem 0.6rem; border-bottom: 1px solid #eeeaf9;}
table.lesson-standings td.num, table.lesson-standings th.num {text-align: right;
                           font-variant-numeric: tabular-nums;}
table.lesson-standings td.player {font-weight: 700; max-width: 14em; overflow: hidden; text-overflow: ellipsis;
                           white-space: nowrap;}
.lesson-status {font-size: 1.3rem; font-weight: 700;}
</style>"""


# ------------------------------------------------------------------------------------------------ actions


def open_new() -> None:
    """The "Open the lesson" button: make it, then show its teacher's view (the code and the key in the URL)."""
    try:
        lesson, key = lessons.open_lesson(ui.run_store(), st.session_state.get(NAME_KEY) or "")
    except ValueError as error:
        st.session_state["lesson_open_error"] = str(error)
        return
    st.session_state.pop("lesson_open_error", None)
    st.query_params.from_dict({lessons.JOIN_PARAMETER: lesson["code"], KEY_PARAMETER: key})


def watch() -> None:
    """The "Show" button: the view of a lesson by its code (no key: watching only)."""
    try:
        lesson = lessons.find_lesson(ui.run_store(), st.session_state.get(WATCH_KEY) or "")
    except lessons.LessonError as error:
        st.session_state["lesson_watch_error"] = str(error)
        return
    st.session_state.pop("lesson_watch_error", None)
    st.query_params.from_dict({lessons.JOIN_PARAMETER: lesson["code"]})


def close(lesson: dict, key: str | None) -> None:
    try:
        lessons.close_lesson(ui.run_store(), lesson, key)
    except lessons.LessonError as error:
        st.session_state["lesson_close_error"] = str(error)


def leave_view() -> None:
    st.query_params.clear()


# -------------------------------------------------------------------------------------------- no lesson yet


def start_forms() -> None:
    ui.page_header("🎓 Lesson", "Open a lesson for your class: students join with a link or a QR code, and this "
                                "page shows how the class does against the model, live, for the projector.")
    left, right = st.columns(2, gap="large")
    with left.container(border=True):
        st.subheader("Open a lesson")
        st.text_input("Name of the lesson", key=NAME_KEY, max_chars=LESSON_NAME_MAX,
                      placeholder="e.g. Year 9 physics, Tuesday")
        if st.session_state.get("lesson_open_error"):
            st.error(st.session_state["lesson_open_error"], icon="✏️")
        st.button("Open the lesson", icon="🎓", type="primary", on_click=open_new, key="lesson_open")
        st.caption("No accounts: students type only a nickname. Bookmark the page the button opens (its address "
                   "holds your teacher's key): it is how you come back, close the lesson and export its results.")
    with right.container(border=True):
        st.subheader("Watch a lesson")
        st.text_input("Lesson code", key=WATCH_KEY, placeholder="e.g. K7M-Q4P", max_chars=40)
        if st.session_state.get("lesson_watch_error"):
            st.error(st.session_state["lesson_watch_error"], icon="🔎")
        st.button("Show the lesson", icon="📺", on_click=watch, key="lesson_watch")
        st.caption("Anyone with the code can watch; closing and the export need the teacher's link.")


# ----------------------------------------------------------------------------------------------- the view


def base_url() -> str:
    """The app's address as students' devices should use it: ``CIFARMIX_PUBLIC_URL``, else this page's own."""
    configured = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    page = urlsplit(st.context.url or f"http://localhost:{st.get_option('server.port')}")  # this page's, with /lesson
    prefix = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{page.scheme}://{page.netloc}" + (f"/{prefix}" if prefix else "")


def join_panel(lesson: dict) -> None:
    """The QR code, the code in large type and the link as text; a warning when the link names this computer."""
    link = lessons.join_link(base_url(), lesson["code"])
    if lesson["closed_at"] is None:  # as big as the screen's height allows: a phone at the back still scans it
        svg = base64.b64encode(lessons.qr_svg(link).encode("utf-8")).decode("ascii")
        st.markdown(f'<div class="lesson-qr"><img alt="QR code of the join link" '
                    f'src="data:image/svg+xml;base64,{svg}"></div>', unsafe_allow_html=True)
    base, _, rest = link.rpartition("/")  # a long address breaks before the page, not inside a word
    st.markdown(f'<div class="lesson-say">Scan, or open</div><div class="lesson-link">{html.escape(base)}/<wbr>'
                f'{html.escape(rest)}</div><div class="lesson-say">or type the code on the Game page:</div>'
                f'<div class="lesson-code">{lessons.shown_code(lesson["code"])}</div>', unsafe_allow_html=True)
    if lessons.local_address(link):
        st.warning("This link names this computer only (localhost): students' devices cannot open it. Open this "
                   "page through the server's network address (e.g. http://192.168.1.20:8501/lesson), or start the "
                   f"app with {PUBLIC_URL_ENV}=http://ADDRESS:PORT.", icon="📡")


def numbers(found: lessons.LessonResults) -> None:
    people = [row for row in found.classes if row["rounds"]]
    answers = sum(row["rounds"] for row in people)
    right = sum(row["human_accuracy"] * row["rounds"] for row in people)
    modelled = [row for row in found.classes if row["model_accuracy"] is not None]
    model_answers = sum(row["model_rounds"] for row in modelled)
    model_right = sum(row["model_accuracy"] * row["model_rounds"] for row in modelled)
    shown = [(len(found.games), "games finished"), (found.players, "players")]
    if answers:
        shown.append((f"{right / answers:.0%}", "class right"))  # of the photos it named
    if model_answers:
        shown.append((f"{model_right / model_answers:.0%}", "model right"))
    st.markdown('<div class="lesson-numbers">' + "".join(
        f'<div class="lesson-number"><b>{value}</b><span>{label}</span></div>' for value, label in shown)
        + "</div>", unsafe_allow_html=True)


def standings_table(found: lessons.LessonResults) -> None:
    """The top of the standings in large type (nicknames escaped: shown as typed, never as HTML)."""
    if not found.standings:
        st.markdown('<div class="lesson-big">Waiting for the first finished game… Scan the code or open the link, '
                    'type a nickname and play.</div>', unsafe_allow_html=True)
        return
    rows = "".join(
        f'<tr><td class="num">{row["rank"]}</td><td class="player">{html.escape(row["player"])}</td>'
        f'<td class="num">{row["best"]}</td><td class="num">{row["games"]}</td><td class="num">{row["won"]}</td></tr>'
        for row in found.standings[:STANDINGS_SHOWN])
    st.markdown('<table class="lesson-standings"><tr><th class="num">#</th><th>Player</th><th class="num">Best</th>'
                '<th class="num">Games</th><th class="num">Beat the model</th></tr>' + rows + "</table>",
                unsafe_allow_html=True)
    if len(found.standings) > STANDINGS_SHOWN:
        st.caption(f"…and {len(found.standings) - STANDINGS_SHOWN} more players (all of them are in the CSV).")


def hardest(found: lessons.LessonResults) -> None:
    """The classes hardest for the class and for the model, one per line, with the share named right."""
    def listed(title: str, rows: list[dict], key: str) -> str:
        items = "".join(f"<li>{html.escape(ui.class_label(row['class_index']))} {row[key]:.0%}</li>" for row in rows)
        return (f"<div><h4>{title}</h4>" + (f"<ol>{items}</ol>" if items else
                "<ol><li>no game against a model yet (the random guesser is none)</li></ol>") + "</div>")

    st.markdown('<div class="lesson-hardest">' + listed("Hardest for the class", found.hardest_for_people,
                                                        "human_accuracy")
                + listed("Hardest for the model", found.hardest_for_model, "model_accuracy") + "</div>",
                unsafe_allow_html=True)


def per_class(found: lessons.LessonResults) -> None:
    if not found.classes:
        return
    figure = figures.classroom(found.classes)
    labels = [ui.class_label(row["class_index"]) for row in found.classes]
    figure.update_layout(height=440, font={"size": 20}, legend={"font": {"size": 22}},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    figure.update_xaxes(tickvals=labels, ticktext=[label.replace(" ", "<br>", 1) for label in labels],  # 2 lines
                        tickangle=0, tickfont={"size": 17})
    figure.update_yaxes(tickfont={"size": 16}, title=None)
    figure.update_traces(insidetextfont={"size": 17}, outsidetextfont={"size": 17})
    st.plotly_chart(figure, key="lesson_classes", config={"displayModeBar": False, "staticPlot": True})


@st.fragment(run_every=LIVE_EVERY_S)
def live(code: str) -> None:
    """The lesson's view, read afresh every ``LIVE_EVERY_S`` seconds (a game finished on any device shows up)."""
    store = ui.run_store()
    try:
        lesson = store.lesson_by_code(code)
        found = lessons.results(store, lesson)
    except DATABASE_ERRORS as error:  # a locked store: say so, the next refresh tries again
        st.warning(f"The lesson's results cannot be read right now ({type(error).__name__}); retrying.", icon="⏳")
        return
    st.title(f"🎓 {ui.escape_markdown(lesson['name'])}", anchor=False)  # the name as typed, never markdown
    st.markdown('<div class="lesson-status">' + (
        f"🔒 Closed at {html.escape(ui.format_time(lesson['closed_at']))}" if found.closed
        else f"🟢 Open · updates every {LIVE_EVERY_S} s") + "</div>", unsafe_allow_html=True)
    join, board = st.columns([4, 6], gap="large")
    with join:
        join_panel(lesson)
    with board:
        numbers(found)
        standings_table(found)
    if found.classes:  # the chart takes the whole width: ten class names must fit under it at 1280 px
        st.markdown("#### People vs the model, class by class (share of photos named right)")
        hardest(found)
        per_class(found)


def teacher_controls(lesson: dict, key: str | None) -> None:
    """Closing and the CSV export, for the teacher's link; a note for anyone else."""
    store = ui.run_store()
    if not lessons.check_key(store, lesson, key):
        st.caption("You are watching this lesson. Closing it and exporting its results take the teacher's link "
                   "(the page that opened when the lesson was made).")
        return
    lesson = store.lesson(lesson["id"])  # closed on another tab: seen here

    def export(table):  # made when the button is pressed (not when the page was drawn): every game so far
        return lambda: table(lessons.results(store, store.lesson(lesson["id"])))

    with st.container(border=True):
        columns = st.columns([3, 3, 3, 4], vertical_alignment="center")
        if lesson["closed_at"] is not None:
            columns[0].markdown("**Closed:** new games go to the server-wide board.")
        else:
            with columns[0].popover("Close the lesson", icon="🔒"):
                st.markdown("Close it? It takes no new games after this (a game still being played then goes to "
                            "the server-wide board); its results stay here and in the export.")
                st.button("Yes, close it", type="primary", on_click=close, args=(lesson, key), key="lesson_close")
        columns[1].download_button("Games (CSV)", export(lessons.games_csv), icon="⬇️", mime="text/csv",
                                   file_name=f"lesson-{lesson['code']}-games.csv", key="lesson_games_csv",
                                   on_click="ignore")
        columns[2].download_button("Classes (CSV)", export(lessons.classes_csv), icon="⬇️", mime="text/csv",
                                   file_name=f"lesson-{lesson['code']}-classes.csv", key="lesson_classes_csv",
                                   on_click="ignore")
        columns[3].caption("This page's address is your teacher's link: bookmark it to come back (it closes the "
                           "lesson). Students need only the join link.")
    if st.session_state.get("lesson_close_error"):
        st.error(st.session_state.pop("lesson_close_error"), icon="🔒")
    st.button("Open another lesson", on_click=leave_view, key="lesson_another")


# ----------------------------------------------------------------------------------------------------- page

st.markdown(STYLE, unsafe_allow_html=True)
typed = st.query_params.get(lessons.JOIN_PARAMETER)
if not typed:
    start_forms()
else:
    try:
        shown = lessons.find_lesson(ui.run_store(), typed)
    except lessons.LessonError as error:
        st.error(f"{error}", icon="🔎")
        st.query_params.clear()
        start_forms()
    else:
        live(shown["code"])
        teacher_controls(shown, st.query_params.get(KEY_PARAMETER))
