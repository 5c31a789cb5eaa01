"""A class at once on a real server (``cifarmix.serving``): concurrent light clients (``bench/stclient.py``) each
play a whole game and every game is saved; a new session on a game's link resumes it; in Chromium, a page refresh
mid-game shows the same round and score. With nginx installed, through two Streamlit processes behind it."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from stclient import Session  # noqa: E402
from test_browser import chromium_page, chromium_path, no_exception_box  # noqa: E402, F401 (a fixture)

from cifarmix import serving  # noqa: E402

PLAYERS = 8
START = "Start a 10-round game"


def processes_available() -> int:
    """2 behind nginx when nginx is installed (CI installs it), else 1."""
    try:
        serving.find_nginx()
    except serving.ServeError:
        if os.environ.get("CI"):
            pytest.fail("CI must test several server processes: nginx is not installed")
        return 1
    return 2


@pytest.fixture
def server(tiny_data, shipped_model, cifarmix_home, tmp_path):
    with serving.Server(processes_available(), "127.0.0.1", serving.free_port(), log_dir=tmp_path) as running:
        yield running


def url(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def saved_games(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "cifarmix.sqlite3") as db:
        return db.execute("SELECT player, rounds FROM scores").fetchall()


async def play(session: Session, rounds: int | None = None) -> None:
    """Start a game and play ``rounds`` rounds (all of them when None), answering group A's first class."""
    await session.click(label=START)
    played = 0
    while session.has("game_submit") and (rounds is None or played < rounds):
        await session.click("game_pick_0")
        await session.click("game_pick_9")
        await session.click("game_submit")
        await session.click("game_next")
        played += 1


def test_every_concurrent_game_is_saved(server, cifarmix_home):
    async def player(number: int) -> str:
        session = Session(url(server), page="game")
        await session.open()
        await session.set_value("game_player", string_value=f"player {number}")
        await play(session)
        text = session.text()
        await session.close()
        return text

    async def everyone():
        return await asyncio.gather(*(player(n) for n in range(PLAYERS)))

    ends = asyncio.run(everyone())
    assert all(re.search(r"Your game is #\d+ of \d+", text) for text in ends), ends
    saved = saved_games(cifarmix_home)
    assert sorted(saved) == sorted((f"player {n}", 10) for n in range(PLAYERS))


def test_a_new_session_on_the_games_link_resumes_the_game(server, cifarmix_home):
    async def scenario():
        first = Session(url(server), page="game")
        await first.open()
        await first.set_value("game_player", string_value="Ada")
        await play(first, rounds=3)
        await first.click("game_pick_2")  # a pick of round 4, not submitted
        before = {label: first.metric(label) for label in ("Round", "You", "Model")}
        await first.close()  # the refresh: this session's websocket is gone
        assert re.search(r"(^|&)game=[\w-]{20,}", first.query), first.query
        again = Session(url(server), page="game", query=first.query, cookies=first.cookies)
        await again.open()
        after = {label: again.metric(label) for label in ("Round", "You", "Model")}
        assert again.find("game_pick_2").proto.type == "primary"  # the pick made before the refresh
        await again.click("game_pick_9")
        await again.click("game_submit")
        await again.click("game_next")
        await play_rest(again)
        stranger = Session(url(server), page="game", query="game=not-a-token", cookies=first.cookies)
        await stranger.open()
        return before, after, stranger.text(), stranger.query

    before, after, stranger, stranger_query = asyncio.run(scenario())
    assert before == after and after["Round"] == "4 / 10"
    assert saved_games(cifarmix_home) == [("Ada", 10)]  # the resumed game was saved once, under its name
    assert "not on the server any more" in stranger and "game=" not in stranger_query


async def play_rest(session: Session) -> None:
    while session.has("game_submit"):
        await session.click("game_pick_0")
        await session.click("game_pick_9")
        await session.click("game_submit")
        await session.click("game_next")


@pytest.mark.browser
def test_a_refresh_mid_game_shows_the_same_round_and_score_in_chromium(chromium_path, server):
    from playwright.sync_api import expect

    with chromium_page(chromium_path, 1280, 900) as page:
        page.goto(f"{url(server)}/game")
        page.get_by_role("button", name=re.compile(r"Start a \d+-round game")).click()
        for number in (1, 2):
            expect(page.get_by_text(f"Round {number}: what is in it?")).to_be_visible()
            page.get_by_role("button", name=re.compile("airplane")).click()
            page.get_by_role("button", name=re.compile("truck")).click()
            page.get_by_role("button", name=re.compile("Submit my answer")).click()
            page.get_by_role("button", name=re.compile("Next round")).click()
        expect(page.get_by_text("Round 3: what is in it?")).to_be_visible()
        page.wait_for_url(re.compile(r"[?&]game=[\w-]{20,}"))
        score = page.get_by_test_id("stMetric").nth(1).inner_text()  # "You" and the points
        page.reload()
        expect(page.get_by_text("Round 3: what is in it?")).to_be_visible()
        expect(page.get_by_test_id("stMetric").first).to_contain_text("3 / 10")
        assert page.get_by_test_id("stMetric").nth(1).inner_text() == score
        no_exception_box(page)
