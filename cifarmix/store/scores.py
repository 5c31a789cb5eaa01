"""Scores: the guessing game's finished games (the leaderboard) and the guesses made in them (the classroom's
per-class table of people against models). A game and its guesses are saved in one transaction.

Each score and guess has the game's mode (``GAME_MODES``: equal mixes, or unequal ones); games saved before
modes existed count as ``"equal"``. The leaderboard, a game's rank and the per-class table each take a mode, so
the modes are kept apart.

Each score and guess may belong to a lesson (``lesson_id``; see ``lessons``): the leaderboard, a game's rank and
the per-class table take a ``lesson_id`` too, and without one they count only the games outside any lesson (the
server-wide board), so a lesson's games stay in the lesson. A game is saved in a lesson only while the lesson is
open, checked in the game's own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from cifarmix.store.db import Database, utc_now
from cifarmix.store.lessons import require_open_lesson
from cifarmix.store.values import DEFAULT_GAME_MODE, clean_player_name, validate_class, validate_head, validate_mode

MODE_OF_ROW = f"COALESCE(mode, '{DEFAULT_GAME_MODE}')"  # a row saved before modes existed: an equal-mixes game


def _lesson_condition(lesson_id: int | None, params: dict) -> str:
    """The SQL condition for the games of a lesson (``lesson_id``), or those outside any lesson (None)."""
    if lesson_id is None:
        return "lesson_id IS NULL"
    params["lesson_id"] = int(lesson_id)
    return "lesson_id = :lesson_id"


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Scores(Database):
    """The scores and guesses tables."""

    def add_score(self, player: str, score: int, rounds: int, opponent: str, model_score: int,
                  details: dict | None = None, guesses: Iterable[dict] = (), mode: str = DEFAULT_GAME_MODE,
                  lesson_id: int | None = None) -> int:
        """Record a finished game, and its guesses with it: both are saved, or (on any error) neither, so a
        save that failed can be tried again without counting a game's guesses twice.

        Args:
            player: the name typed by the player; cleaned by ``clean_player_name``.
            score: the player's points.
            rounds: rounds played.
            opponent: the model played against.
            model_score: the model's points.
            details: anything else worth keeping (JSON-able).
            guesses: the game's guess rows, one per head guessed: dicts with head ("first"/"second"),
                true_class, human_class, model_class (CIFAR-10 indices 0-9) and opponent (the model's name).
            mode: the game's mode (``GAME_MODES``), given to its guesses too.
            lesson_id: the lesson the game was played in (it must be open), or None: the server-wide board.

        Returns:
            The score id.

        Raises:
            ValueError: if the name has no visible character, or a guess row is malformed.
            LessonClosedError: the lesson was closed (nothing is saved; save it again without the lesson).
            UnknownLessonError: there is no such lesson (nothing is saved).
        """
        now = utc_now()
        mode = validate_mode(mode)
        lesson = None if lesson_id is None else int(lesson_id)
        record = {"player": clean_player_name(player), "score": int(score), "rounds": int(rounds),
                  "opponent": str(opponent), "model_score": int(model_score),
                  "details": None if details is None else json.dumps(details), "created_at": now, "mode": mode,
                  "lesson_id": lesson}
        guess_records = [{**self._guess_record(row, now), "mode": mode, "lesson_id": lesson} for row in guesses]

        def insert(conn: Connection) -> int:
            if lesson is not None:
                require_open_lesson(conn, lesson)
            self._insert_guesses(conn, guess_records)
            return conn.execute(text(
                "INSERT INTO scores (player, score, rounds, opponent, model_score, details, created_at, mode,"
                " lesson_id) VALUES (:player, :score, :rounds, :opponent, :model_score, :details, :created_at,"
                " :mode, :lesson_id) RETURNING id"), record).scalar_one()

        return self._write(insert)

    def leaderboard(self, limit: int | None = 10, opponent: str | None = None, mode: str | None = None,
                    lesson_id: int | None = None) -> list[dict]:
        """The best games, best score first, then the earliest: those of the lesson ``lesson_id``, or (None)
        those outside any lesson; optionally only against ``opponent`` and/or only of one ``mode``; at most
        ``limit`` (None: every one).

        Returns:
            Dicts with id, player, score, rounds, opponent, model_score, details (decoded or None), created_at,
            mode (``"equal"`` for a game saved before modes existed), lesson_id.
        """
        params: dict[str, Any] = {}
        conditions = [_lesson_condition(lesson_id, params)]
        if opponent is not None:
            conditions.append("opponent = :opponent")
            params["opponent"] = str(opponent)
        if mode is not None:
            conditions.append(f"{MODE_OF_ROW} = :mode")
            params["mode"] = validate_mode(mode)
        if limit is not None:
            params["limit"] = int(limit)
        rows = self._read(lambda conn: conn.execute(text(
            f"SELECT * FROM scores WHERE {' AND '.join(conditions)} ORDER BY score DESC, created_at, id"
            + (" LIMIT :limit" if limit is not None else "")), params).mappings().all())
        return [{**dict(row), "details": _json_or_none(row["details"]), "mode": row["mode"] or DEFAULT_GAME_MODE}
                for row in rows]

    def score_rank(self, score_id: int) -> tuple[int, int]:
        """Where a game stands on its mode's leaderboard, in its lesson (or outside any, as it was saved):
        ``(rank, number of games of that mode there)``; rank 1 is the best.

        Ties are ordered as ``leaderboard`` orders them (the earlier game first).

        Raises:
            LookupError: if there is no such score.
        """
        def query(conn: Connection) -> tuple[int, int]:
            row = conn.execute(text(f"SELECT score, created_at, id, {MODE_OF_ROW} AS mode, lesson_id FROM scores"
                                    " WHERE id = :id"), {"id": int(score_id)}).mappings().first()
            if row is None:
                raise LookupError(f"there is no game #{score_id} on the leaderboard")
            params = {"mode": row["mode"], "score": row["score"], "created_at": row["created_at"], "id": row["id"]}
            board = f"{MODE_OF_ROW} = :mode AND {_lesson_condition(row['lesson_id'], params)}"
            counts = conn.execute(text(
                f"SELECT COUNT(*) AS games, COALESCE(SUM(CASE WHEN score > :score OR (score = :score AND"
                " (created_at < :created_at OR (created_at = :created_at AND id < :id))) THEN 1 ELSE 0 END), 0)"
                f" AS better FROM scores WHERE {board}"), params).mappings().one()
            return int(counts["better"]) + 1, int(counts["games"])

        return self._read(query)

    @staticmethod
    def _insert_guesses(conn: Connection, records: list[dict]) -> None:
        if records:
            conn.execute(text("INSERT INTO guesses (head, true_class, human_class, model_class, opponent, created_at,"
                              " mode, lesson_id) VALUES (:head, :true_class, :human_class, :model_class,"
                              " :opponent, :created_at, :mode, :lesson_id)"), records)

    @staticmethod
    def _guess_record(row: dict, now: str) -> dict:
        missing = sorted({"head", "true_class", "human_class", "model_class", "opponent"} - set(row))
        if missing:
            raise ValueError(f"Expected a guess row with head, true_class, human_class, model_class, opponent; "
                             f"missing {', '.join(missing)} in {row!r}.")
        validate_head(row["head"])
        classes = {field: validate_class(field, row[field]) for field in ("true_class", "human_class", "model_class")}
        return {"head": row["head"], **classes, "opponent": str(row["opponent"]), "created_at": now}

    def class_accuracy(self, ignored_models: Iterable[str] = (), mode: str | None = None,
                       lesson_id: int | None = None) -> pd.DataFrame:
        """Human and model accuracy per true CIFAR-10 class over the games of the lesson ``lesson_id`` (None:
        those outside any lesson), of ``mode`` if given, for classes guessed at least once.

        Args:
            ignored_models: opponents whose answers do not count for the models (the random guesser: it is
                no model, and averaging its 20% in would flatter the people). The people's answers in those
                games still count for the people.
            mode: only the guesses of games of this mode (``GAME_MODES``).
            lesson_id: only the guesses of this lesson's games; None: of the games outside any lesson.

        Returns:
            Columns class_index, rounds, human_accuracy, model_rounds, model_accuracy (fractions 0-1; NaN
            where no counted model has answered yet), sorted by class_index.
        """
        ignored = [str(name) for name in ignored_models]
        counted = "opponent NOT IN :ignored" if ignored else "1 = 1"
        params: dict[str, Any] = {"ignored": ignored} if ignored else {}
        conditions = [_lesson_condition(lesson_id, params)]
        if mode is not None:
            conditions.append(f"{MODE_OF_ROW} = :mode")
            params["mode"] = validate_mode(mode)
        query = text(  # counts (integers on both databases); the fractions are taken below
            "SELECT true_class AS class_index, COUNT(*) AS rounds,"
            " SUM(CASE WHEN human_class = true_class THEN 1 ELSE 0 END) AS human_right,"
            f" SUM(CASE WHEN {counted} THEN 1 ELSE 0 END) AS model_rounds,"
            f" SUM(CASE WHEN {counted} AND model_class = true_class THEN 1 ELSE 0 END) AS model_right"
            f" FROM guesses WHERE {' AND '.join(conditions)} GROUP BY true_class ORDER BY true_class")
        if ignored:
            query = query.bindparams(bindparam("ignored", expanding=True))
        rows = self._read(lambda conn: conn.execute(query, params).mappings().all())
        counts = pd.DataFrame([dict(row) for row in rows], columns=["class_index", "rounds", "human_right",
                                                                    "model_rounds", "model_right"]).astype("int64")
        model_rounds = counts["model_rounds"].astype("float64")
        return pd.DataFrame({
            "class_index": counts["class_index"], "rounds": counts["rounds"],
            "human_accuracy": counts["human_right"] / counts["rounds"],
            "model_rounds": counts["model_rounds"],
            "model_accuracy": (counts["model_right"] / model_rounds).where(model_rounds > 0, np.nan),
        })
