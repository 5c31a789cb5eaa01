"""The values the run store takes from its callers, checked or cleaned before any SQL sees them: run statuses,
heads, class indices, game modes, run and player names, and run ids typed by people.

This module imports nothing of the store, so every other store module (the schema included) can use it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np

from cifarmix.heads import HEADS

STATUSES = ("queued", "running", "finished", "stopped", "failed", "killed")
TERMINAL_STATUSES = ("finished", "stopped", "failed", "killed")
ACTIVE_STATUSES = ("queued", "running")
PLAYER_NAME_MAX = 24
RUN_NAME_MAX = 40
LESSON_NAME_MAX = 60
RUN_ID_MAX_DIGITS = 18  # the store's integers are 64-bit (SQLite's; BIGINT on PostgreSQL): longer are no run ids
GAME_MODES = ("equal", "unequal")  # plain averages, or a weight of A drawn per round from a range
DEFAULT_GAME_MODE = "equal"  # what a game saved before modes existed was


ZERO_WIDTH_JOINER = "\u200d"
# Characters that draw nothing though Unicode files them as letters or symbols (so they pass as "visible"): the
# Hangul fillers, the blank Braille pattern and the Khmer inherent vowels; and marks that need a base to show on.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f")


def _pictographic(ch: str) -> bool:
    """Whether ``ch`` draws as (part of) an emoji: a symbol, a skin-tone modifier or an emoji variation selector."""
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


def _printable(text: str) -> str:
    """``text`` without control and other non-printable characters (Unicode category C) and the characters that
    draw nothing (``INVISIBLE``); a zero-width joiner between two emoji stays (it makes one combined emoji)."""
    kept = []
    for index, ch in enumerate(text):
        if ch == ZERO_WIDTH_JOINER:
            after = text[index + 1] if index + 1 < len(text) else ""
            if kept and _pictographic(kept[-1]) and after and _pictographic(after):
                kept.append(ch)
            continue
        if ch in INVISIBLE or unicodedata.category(ch).startswith("C"):
            continue
        kept.append(ch)
    return "".join(kept)


def has_visible(text: str) -> bool:
    """Whether ``text`` draws anything: a letter, digit, punctuation or symbol (not only spaces, marks or
    ``INVISIBLE`` characters)."""
    return any(unicodedata.category(ch)[0] in "LNPS" and ch not in INVISIBLE for ch in text)


def clean_player_name(name: str) -> str:
    """A player name fit for the leaderboard.

    Control and other non-printable characters and those that draw nothing are removed (a zero-width joiner
    inside a combined emoji stays), surrounding whitespace is stripped and the result is cut to
    ``PLAYER_NAME_MAX`` characters.

    Raises:
        ValueError: if nothing visible is left (a name of spaces, fillers or lone marks).
    """
    if not isinstance(name, str):
        raise ValueError(f"Expected the player name as text, found {type(name).__name__}; type a name.")
    cleaned = _printable(name).strip()[:PLAYER_NAME_MAX].rstrip()
    if not has_visible(cleaned):
        raise ValueError(f"Expected a player name with at least one visible character, found {name!r}; type a name.")
    return cleaned


def clean_run_name(name: str | None) -> str | None:
    """A run's name fit for tables and legends: printable, stripped, None when nothing visible is left.

    Raises:
        ValueError: if it is longer than ``RUN_NAME_MAX`` characters.
    """
    if name is None:
        return None
    cleaned = _printable(str(name)).strip()
    if len(cleaned) > RUN_NAME_MAX:
        raise ValueError(f"the run name is {len(cleaned)} characters long; give one of at most {RUN_NAME_MAX}")
    return cleaned if has_visible(cleaned) else None


def clean_lesson_name(name: str) -> str:
    """A lesson's name fit for the projector and a CSV: printable, stripped, at most ``LESSON_NAME_MAX``
    characters.

    Raises:
        ValueError: if nothing visible is left, or it is longer than ``LESSON_NAME_MAX`` characters.
    """
    cleaned = _printable(str(name)).strip()
    if not has_visible(cleaned):
        raise ValueError(f"Expected a lesson name with at least one visible character, found {name!r}; type a name "
                         "(e.g. the class and the day).")
    if len(cleaned) > LESSON_NAME_MAX:
        raise ValueError(f"the lesson name is {len(cleaned)} characters long; give one of at most {LESSON_NAME_MAX}")
    return cleaned


def parse_run_id(text: Any) -> int | None:
    """A run id typed by a user or read from a link (``"12"``), or None when the text is not one.

    Only ASCII digits count (``"²"`` and ``"١٢"`` are digits to Python, not run ids), at most
    ``RUN_ID_MAX_DIGITS`` of them, so the number always fits in the store's 64-bit integers.
    """
    text = str(text).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= RUN_ID_MAX_DIGITS):
        return None
    return int(text)


def validate_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one of ``STATUSES``."""
    if status not in STATUSES:
        raise ValueError(f"Expected a run status among {', '.join(STATUSES)}; found {status!r}.")


def validate_head(head: str) -> None:
    """Raise ValueError unless ``head`` is one of ``HEADS``."""
    if head not in HEADS:
        raise ValueError(f"Expected head 'first' or 'second'; found {head!r}.")


def validate_class(field: str, value: Any) -> int:
    """``value`` as an int if it is a CIFAR-10 class index 0-9 (not a bool); ValueError naming ``field`` if not."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 9:
        raise ValueError(f"Expected {field} to be a CIFAR-10 class index 0-9; found {value!r}.")
    return int(value)


def validate_mode(mode: str) -> str:
    """``mode`` if it is one of ``GAME_MODES``; ValueError if not."""
    if mode not in GAME_MODES:
        raise ValueError(f"Expected a game mode among {', '.join(GAME_MODES)}; found {mode!r}.")
    return mode
