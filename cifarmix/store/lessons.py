"""Lessons: a teacher's class on the server, with a name and a code the students join with.

A lesson is opened (``add_lesson``), found by its code (``lesson_by_code``), closed (``close_lesson``) and listed;
its games are the scores and guesses saved with its id (``Scores.add_score(lesson_id=...)``), which checks, in the
game's own transaction, that the lesson is still open (``require_open_lesson``): a game finished after the close
is refused, never half saved. The codes themselves (their alphabet, how a typed code is read) and the standings
are the core's (``cifarmix.lessons``); the store keeps the text it is given.

The teacher's key (what closing takes) is stored only as its SHA-256 hash.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cifarmix.store.db import Database, for_share, utc_now
from cifarmix.store.values import clean_lesson_name

LESSON_COLUMNS = ("id", "code", "name", "created_at", "closed_at")  # what a lesson reads as (never the key's hash)


class LessonError(ValueError):
    """A lesson that cannot take what was asked of it; the message says which lesson and why."""


class UnknownLessonError(LessonError, LookupError):
    """No lesson has that id or code."""


class LessonClosedError(LessonError):
    """The lesson was closed: it takes no new games.

    Attributes:
        lesson: the lesson (``LESSON_COLUMNS``).
    """

    def __init__(self, message: str, lesson: dict):
        super().__init__(message)
        self.lesson = lesson


def _lesson(row) -> dict:
    return {column: row[column] for column in LESSON_COLUMNS}


def require_open_lesson(conn: Connection, lesson_id: int) -> dict:
    """The lesson ``lesson_id``, read on ``conn`` (inside the caller's transaction), if it is open.

    On PostgreSQL the lesson's row is locked (shared) until that transaction ends: a close that is committing waits
    for the game, or the game waits for it and finds the lesson closed (games of one lesson never wait for each
    other), so no game is saved in a lesson closed before it.

    Raises:
        UnknownLessonError: no such lesson.
        LessonClosedError: it was closed.
    """
    row = conn.execute(text(f"SELECT id, code, name, created_at, closed_at FROM lessons WHERE id = :id"
                            f"{for_share(conn)}"), {"id": int(lesson_id)}).mappings().first()
    if row is None:
        raise UnknownLessonError(f"there is no lesson #{lesson_id}; the game was not saved in a lesson")
    lesson = _lesson(row)
    if lesson["closed_at"] is not None:
        raise LessonClosedError(f"the lesson {lesson['name']!r} ({lesson['code']}) was closed at "
                                f"{lesson['closed_at'][:16].replace('T', ' ')} UTC: it takes no new games",
                                lesson)
    return lesson


class Lessons(Database):
    """The lessons table."""

    def add_lesson(self, name: str, code: str, teacher_key_hash: str) -> dict | None:
        """Open a lesson under ``code``; None (nothing written) when another lesson already has that code.

        Args:
            name: the lesson's name, cleaned by ``clean_lesson_name``.
            code: its join code, as the core made it (stored as given; unique).
            teacher_key_hash: the SHA-256 hex of the key that closes it.

        Returns:
            The lesson (``LESSON_COLUMNS``), or None if the code is taken.

        Raises:
            ValueError: a name with nothing visible in it, or too long.
        """
        record = {"code": str(code), "name": clean_lesson_name(name), "key": str(teacher_key_hash),
                  "now": utc_now()}

        def insert(conn: Connection) -> dict | None:
            row = conn.execute(text(
                "INSERT INTO lessons (code, name, teacher_key_hash, created_at) VALUES (:code, :name, :key, :now)"
                " ON CONFLICT (code) DO NOTHING RETURNING id"), record).mappings().first()
            if row is None:
                return None
            return {"id": row["id"], "code": record["code"], "name": record["name"], "created_at": record["now"],
                    "closed_at": None}

        return self._write(insert)

    def lesson_by_code(self, code: str) -> dict | None:
        """The lesson with exactly this code (``LESSON_COLUMNS``), or None."""
        row = self._read(lambda conn: conn.execute(text(
            "SELECT id, code, name, created_at, closed_at FROM lessons WHERE code = :code"),
            {"code": str(code)}).mappings().first())
        return None if row is None else _lesson(row)

    def lesson(self, lesson_id: int) -> dict | None:
        """The lesson with this id (``LESSON_COLUMNS``), or None."""
        row = self._read(lambda conn: conn.execute(text(
            "SELECT id, code, name, created_at, closed_at FROM lessons WHERE id = :id"),
            {"id": int(lesson_id)}).mappings().first())
        return None if row is None else _lesson(row)

    def lesson_key_hash(self, lesson_id: int) -> str | None:
        """The stored hash of the lesson's teacher key (for the core's check), or None for no such lesson."""
        row = self._read(lambda conn: conn.execute(text(
            "SELECT teacher_key_hash FROM lessons WHERE id = :id"), {"id": int(lesson_id)}).mappings().first())
        return None if row is None else row["teacher_key_hash"]

    def close_lesson(self, lesson_id: int) -> dict:
        """Close a lesson: from now on it takes no new games (those saved stay). Closing a closed lesson keeps
        its first closing time.

        Returns:
            The lesson as closed.

        Raises:
            UnknownLessonError: no such lesson.
        """
        def close(conn: Connection) -> dict:
            conn.execute(text("UPDATE lessons SET closed_at = :now WHERE id = :id AND closed_at IS NULL"),
                         {"now": utc_now(), "id": int(lesson_id)})
            row = conn.execute(text("SELECT id, code, name, created_at, closed_at FROM lessons WHERE id = :id"),
                               {"id": int(lesson_id)}).mappings().first()
            if row is None:
                raise UnknownLessonError(f"there is no lesson #{lesson_id} to close")
            return _lesson(row)

        return self._write(close)

    def lessons(self, open_only: bool = False) -> list[dict]:
        """Every lesson (or only the open ones), newest first."""
        where = "WHERE closed_at IS NULL" if open_only else ""
        rows = self._read(lambda conn: conn.execute(text(
            f"SELECT id, code, name, created_at, closed_at FROM lessons {where} ORDER BY id DESC")).mappings().all())
        return [_lesson(row) for row in rows]
