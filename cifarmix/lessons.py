"""Lessons: a teacher's class playing the game together, joined by a short code. No UI here.

A teacher opens a lesson (``open_lesson``: a name; the app makes its code and a teacher's key), shows the join
link (``join_link``, ``/game?lesson=CODE``) and its QR code (``qr_svg``) on the projector; students who join
(``join_lesson``: the link, or the code typed on the Game page) play their games in the lesson, and the lesson's
view reads its results (``results``: standings, games finished, people against the model per class, the classes
hardest for the class and for the model). The teacher closes it (``close_lesson``, which takes the teacher's key)
and exports its games and classes as CSV (``games_csv``, ``classes_csv``). Games outside any lesson stay on the
server-wide board; a lesson's games count only in the lesson.

Codes: ``CODE_LENGTH`` (6) characters drawn with ``secrets`` from ``ALPHABET``, the 31 letters and digits that
cannot be mistaken for one another on a projector or typed wrong (no 0/O, 1/I/L): 31**6 = 887,503,681 codes, so a
few (or a few thousand) guesses find an open lesson with a negligible chance. A code is shown as ``K7M-Q4P`` and
read back however it is typed: lower case, spaces, a hyphen, or the whole join link pasted (``normalise_code``).

The teacher's key (``secrets.token_urlsafe``, 128 bits) is what closes a lesson: the code is no secret (every
student has it), so anyone may watch a lesson's view, but only the teacher's link closes it or exports it from
the app. The store keeps only the key's SHA-256.

No accounts and nothing personal: a game keeps the nickname the student typed, and nothing else about them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from cifarmix import game
from cifarmix.data import CLASS_NAMES
from cifarmix.store import LessonClosedError, LessonError, UnknownLessonError

__all__ = [
    "ALPHABET", "CODE_LENGTH", "CODE_SPACE", "HARDEST_SHOWN", "JOIN_PARAMETER", "LessonClosedError", "LessonError",
    "LessonResults", "UnknownLessonError", "check_key", "classes_csv", "close_lesson", "find_lesson", "games_csv",
    "hardest_classes", "join_lesson", "join_link", "key_hash", "local_address", "new_code", "normalise_code",
    "open_lesson", "qr_svg", "results", "shown_code", "standings",
]

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: nothing to mistake on a projector
CODE_LENGTH = 6
CODE_SPACE = len(ALPHABET) ** CODE_LENGTH  # 887,503,681
CODE_TRIES = 20  # fresh codes tried before giving up (a clash is ~1 in 10^8 per open lesson)
JOIN_PARAMETER = "lesson"  # /game?lesson=CODE
HARDEST_SHOWN = 3  # classes named as hardest, for the class and for the model
_SEPARATORS = re.compile(r"[\s\-_.·]+")
_ALPHABET_TEXT = "letters and digits 2-9, without I, L, O, 0 or 1"


# -------------------------------------------------------------------------------------------------- codes


def new_code() -> str:
    """A fresh random code: ``CODE_LENGTH`` characters of ``ALPHABET``, from ``secrets`` (not guessable)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def shown_code(code: str) -> str:
    """A code as the projector shows it: ``K7M-Q4P`` (two halves are easier to read out and copy)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalise_code(text: str) -> str:
    """The code in what a student typed or a link carried: upper case, without spaces and hyphens; a whole join
    link pasted (``http://…/game?lesson=k7m-q4p``) gives its code.

    Raises:
        LessonError: nothing typed, the wrong length, or characters no code has (the message says which).
    """
    text = str(text or "")
    if f"{JOIN_PARAMETER}=" in text:  # a pasted join link: its parameter
        text = text.split(f"{JOIN_PARAMETER}=", 1)[1].split("&", 1)[0]
    code = _SEPARATORS.sub("", text).upper()
    if not code:
        raise LessonError("Type the lesson's code (it is on the projector, e.g. K7M-Q4P).")
    wrong = sorted({ch for ch in code if ch not in ALPHABET})
    if wrong:
        shown = ", ".join(repr(ch) for ch in wrong)
        raise LessonError(f"A lesson code has only {_ALPHABET_TEXT}; {text.strip()!r} has {shown}. Check the code "
                          "on the projector.")
    if len(code) != CODE_LENGTH:
        raise LessonError(f"A lesson code has {CODE_LENGTH} characters (e.g. K7M-Q4P); {text.strip()!r} has "
                          f"{len(code)}. Check the code on the projector.")
    return code


# ------------------------------------------------------------------------------------------ teacher's key


def new_teacher_key() -> str:
    """A fresh teacher's key (128 random bits, URL-safe text)."""
    return secrets.token_urlsafe(16)


def key_hash(key: str) -> str:
    """What the store keeps of a teacher's key: its SHA-256, hex."""
    return hashlib.sha256(str(key).encode("utf-8")).hexdigest()


def check_key(store, lesson: dict, key: str | None) -> bool:
    """Whether ``key`` is the lesson's teacher's key (compared in constant time)."""
    stored = store.lesson_key_hash(lesson["id"])
    return bool(key) and stored is not None and hmac.compare_digest(stored, key_hash(key))


# ------------------------------------------------------------------------------------------------ lessons


def open_lesson(store, name: str) -> tuple[dict, str]:
    """Open a lesson called ``name`` under a fresh code.

    Returns:
        ``(lesson, teacher_key)``: the lesson (id, code, name, created_at, closed_at) and the key that closes it
        (shown to the teacher only, in the teacher's link; the store keeps its hash).

    Raises:
        ValueError: a name with nothing visible, or too long (``store.LESSON_NAME_MAX``).
    """
    key = new_teacher_key()
    for _ in range(CODE_TRIES):
        lesson = store.add_lesson(name, new_code(), key_hash(key))
        if lesson is not None:
            return lesson, key
    raise RuntimeError(f"no free lesson code after {CODE_TRIES} tries; the store holds too many lessons")


def find_lesson(store, text: str) -> dict:
    """The lesson whose code is in ``text`` (typed, or from a link; see ``normalise_code``), open or closed.

    Raises:
        LessonError: ``text`` is no code.
        UnknownLessonError: no lesson has that code.
    """
    code = normalise_code(text)
    lesson = store.lesson_by_code(code)
    if lesson is None:
        raise UnknownLessonError(f"No lesson has the code {shown_code(code)}. Check the code on the projector, or "
                                 "ask your teacher.")
    return lesson


def join_lesson(store, text: str) -> dict:
    """The open lesson whose code is in ``text``: the one a student's games will be saved in.

    Raises:
        LessonError: ``text`` is no code.
        UnknownLessonError: no lesson has that code.
        LessonClosedError: the lesson is closed (it takes no new games).
    """
    lesson = find_lesson(store, text)
    if lesson["closed_at"] is not None:
        raise LessonClosedError(f"The lesson {lesson['name']!r} ({shown_code(lesson['code'])}) is closed: it takes "
                                "no new games. You can still play; your games go to the server-wide board.", lesson)
    return lesson


def close_lesson(store, lesson: dict, key: str | None) -> dict:
    """Close a lesson with its teacher's key: from now on it takes no new games (its games stay, and so do its
    results). Closing it again changes nothing.

    Raises:
        LessonError: the key is not this lesson's.
    """
    if not check_key(store, lesson, key):
        raise LessonError(f"Only the teacher's link closes the lesson {lesson['name']!r} "
                          f"({shown_code(lesson['code'])}); this page was opened without its key.")
    return store.close_lesson(lesson["id"])


def join_link(base_url: str, code: str) -> str:
    """The link students open to join: ``{base_url}/game?lesson=CODE`` (``base_url`` without a trailing slash)."""
    return f"{str(base_url).rstrip('/')}/game?{JOIN_PARAMETER}={code}"


def local_address(url: str) -> bool:
    """Whether ``url`` names this computer only (localhost, 127.x, ::1, 0.0.0.0): other devices cannot open it."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1", "0.0.0.0", "") or host.startswith("127.") or host.endswith(".localhost")


def qr_svg(text: str) -> str:
    """``text`` as a QR code, SVG markup (black on white, a 4-module quiet zone, scalable to any screen).

    A full QR code, never a Micro QR (which many phone cameras do not read); error correction M at least
    (raised when it costs no size), so a projector's glare or a bad angle still scans.
    """
    import segno

    code = segno.make_qr(text, error="m", boost_error=True)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=10, border=4, dark="#000000", light="#ffffff", xmldecl=False, svgns=True,
              title=None, desc=None, omitsize=True)
    return out.getvalue().decode("utf-8")


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class LessonResults:
    """What a lesson's view shows, read in one go (``results``).

    Attributes:
        lesson: the lesson (id, code, name, created_at, closed_at).
        games: every game saved in it, best first (``Scores.leaderboard`` rows).
        standings: one row per nickname (``standings``).
        classes: people against the model per class (``game.classroom_summary`` rows, answered picks only;
            the random guesser counts for the people, not as a model).
        hardest_for_people / hardest_for_model: up to ``HARDEST_SHOWN`` of those rows, hardest first.
    """

    lesson: dict
    games: list[dict]
    standings: list[dict]
    classes: list[dict]
    hardest_for_people: list[dict]
    hardest_for_model: list[dict]

    @property
    def players(self) -> int:
        return len(self.standings)

    @property
    def closed(self) -> bool:
        return self.lesson["closed_at"] is not None


def results(store, lesson: dict) -> LessonResults:
    """Everything a lesson's view shows, from the games saved in it."""
    games = store.leaderboard(limit=None, lesson_id=lesson["id"])
    classes = game.classroom_summary(store.class_accuracy(ignored_models=[game.BASELINE_OPPONENT],
                                                          lesson_id=lesson["id"]))
    return LessonResults(lesson, games, standings(games), classes, hardest_classes(classes, "human"),
                         hardest_classes(classes, "model"))


def standings(games: list[dict]) -> list[dict]:
    """One row per nickname over a lesson's games (``games`` best first, as ``Scores.leaderboard`` gives them):
    rank, player, best (score), games, mean (score), won (games that beat the opponent), best_at (when the best
    was saved). Ranked by best score; a tie goes to the one who reached it first, and shares the rank.

    Nicknames are the students' own: two students who typed the same one share a row.
    """
    rows: dict[str, dict] = {}
    for played in games:  # best first: a player's first game here is their best
        row = rows.setdefault(played["player"], {"player": played["player"], "best": played["score"], "games": 0,
                                                 "total": 0, "won": 0, "best_at": played["created_at"]})
        row["games"] += 1
        row["total"] += played["score"]
        row["won"] += int(game.verdict(played["score"], played["model_score"]) == "human")
    ranked = []
    for position, row in enumerate(rows.values(), start=1):
        rank = ranked[-1]["rank"] if ranked and ranked[-1]["best"] == row["best"] else position
        ranked.append({"rank": rank, "player": row["player"], "best": row["best"], "games": row["games"],
                       "mean": row["total"] / row["games"], "won": row["won"], "best_at": row["best_at"]})
    return ranked


def hardest_classes(classes: list[dict], who: str, count: int = HARDEST_SHOWN) -> list[dict]:
    """The ``count`` classes ``who`` ("human": the class of students; "model") named right least often (rows of
    ``game.classroom_summary``); a tie goes to the class that came up more often. Classes the model has not
    answered on (only the random guesser was played) are left out for the model."""
    if who not in ("human", "model"):
        raise ValueError(f"Expected who to be 'human' or 'model'; got {who!r}.")
    key = "rounds" if who == "human" else "model_rounds"
    answered = [row for row in classes if row[f"{who}_accuracy"] is not None and row[key] > 0]
    return sorted(answered, key=lambda row: (row[f"{who}_accuracy"], -row[key], row["class_index"]))[:count]


# ---------------------------------------------------------------------------------------------------- CSV

GAMES_COLUMNS = ("lesson_code", "lesson_name", "player", "score", "opponent_score", "result", "rounds", "opponent",
                 "mixes", "time_per_round_s", "finished_at_utc")
CLASSES_COLUMNS = ("lesson_code", "lesson_name", "class_index", "class", "answers_by_people", "people_right",
                   "answers_by_models", "models_right", "better")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> object:
    """A CSV cell: text a spreadsheet would run as a formula (a nickname typed as ``=1+1``) is quoted with ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(columns: tuple[str, ...], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()


def games_csv(found: LessonResults) -> str:
    """A lesson's games as CSV text, one row per game, best first (``GAMES_COLUMNS``); shares as plain numbers."""
    lesson = found.lesson
    rows = []
    for played in found.games:
        details = played.get("details") or {}
        limit = details.get("time_limit")
        rows.append((lesson["code"], lesson["name"], played["player"], played["score"], played["model_score"],
                     {"human": "won", "model": "lost", "tie": "tie"}[game.verdict(played["score"],
                                                                                  played["model_score"])],
                     played["rounds"], played["opponent"], played["mode"], "" if not limit else f"{limit:g}",
                     played["created_at"]))
    return _csv(GAMES_COLUMNS, rows)


def classes_csv(found: LessonResults) -> str:
    """A lesson's people-against-the-model table as CSV text, one row per class that came up (``CLASSES_COLUMNS``;
    shares 0-1 with 4 decimals, empty where no model answered)."""
    lesson = found.lesson
    rows = [(lesson["code"], lesson["name"], row["class_index"], CLASS_NAMES[row["class_index"]], row["rounds"],
             f"{row['human_accuracy']:.4f}", row["model_rounds"],
             "" if row["model_accuracy"] is None else f"{row['model_accuracy']:.4f}",
             {"human": "people", "model": "models", "tie": "tie", None: ""}[row["winner"]])
            for row in found.classes]
    return _csv(CLASSES_COLUMNS, rows)
