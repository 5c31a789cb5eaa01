"""Game rounds and scoring for "guess the two classes". No UI here.

A game is ``ROUNDS`` rounds. Each round mixes one test image of group A (classes 0-4) with one of group B
(classes 5-9); the player and the model each name one class per group. Rounds are dealt from the test set with
a seed, each class appearing equally often per group, so a game can be replayed and per-class results
compare fairly.

Scoring, the same for player and model: ``POINTS_PER_CLASS`` per correct class; a perfect round (both right)
also earns ``STREAK_BONUS`` for every perfect round right before it (at most ``MAX_STREAK_BONUS``).
With a time limit, an answer given more than ``LATE_GRACE_S`` seconds after it counts as no answer.

Two modes: ``"equal"`` mixes (every round at the game's weight of A, 0.5 by default) and ``"unequal"`` ones (each
round's weight of A drawn from a range the teacher sets, reproducibly for the seed; the rounds' photos are the
same as an equal game of that seed). A saved game records its mode, and the leaderboard and the classroom chart
keep the modes apart.

A game moves through three stages: ``"guess"`` (waiting for the player) -> ``answer()`` -> ``"reveal"`` ->
``advance()`` -> the next ``"guess"``, or ``"over"`` after the last round.

A page plays a round through the ``Game`` alone, which keeps the round's state (plain Python, no UI): the model
answers first (``opponent_answer``), then ``show_round()`` starts the round's clock, each ``pick()`` records a
class and when it was made, and ``submit()`` (the Submit button, or ``out_of_time()``) scores the picks so far.
Clock readings are ``time.monotonic()`` seconds; every method that reads the clock takes ``now`` for tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from cifarmix import mixing, pairs
from cifarmix.data import CLASS_NAMES, class_label
from cifarmix.pairs import DEFAULT_ALPHA, GROUP_SIZE

ROUNDS = 10
POINTS_PER_CLASS = 10
STREAK_BONUS = 5
MAX_STREAK_BONUS = 15
LATE_GRACE_S = 2.0
BASELINE_OPPONENT = "random-baseline"  # the untrained random guesser, offered when no model is trained
MODES = {"equal": "Equal mixes (50 / 50)", "unequal": "Unequal mixes"}  # the store's GAME_MODES, named
DEFAULT_ALPHA_RANGE = (0.2, 0.8)  # unequal mixes: the weights of A a round is drawn from, by default


# ------------------------------------------------------------------------------------------------- rounds


@dataclass(frozen=True)
class Round:
    """One mixed image to name.

    Attributes:
        number: 1-based position in the game.
        a_index / b_index: indices into the test set of the group-A and group-B components.
        first / second: the right answers, 0-4 within each group (``second`` + 5 is the CIFAR-10 class).
        alpha: this round's weight of A (unequal mixes), or None: the game's weight.
    """

    number: int
    a_index: int
    b_index: int
    first: int
    second: int
    alpha: float | None = None

    @property
    def true_classes(self) -> tuple[int, int]:
        """The two right answers as CIFAR-10 class indices (0-4, 5-9)."""
        return self.first, self.second + GROUP_SIZE


@dataclass(frozen=True)
class Answer:
    """A guess for both groups, 0-4 each (None: no answer), with the model's confidence when it answers."""

    first: int | None
    second: int | None
    confidence: tuple[float, float] | None = None

    def classes(self) -> tuple[int | None, int | None]:
        """The guess as CIFAR-10 class indices."""
        return self.first, None if self.second is None else self.second + GROUP_SIZE


NO_ANSWER = Answer(None, None)


@dataclass(frozen=True)
class RoundResult:
    """What happened in one round, for both players."""

    round: Round
    human: Answer  # the picks that counted (a pick made after the time limit is None)
    model: Answer
    human_correct: tuple[bool, bool]
    model_correct: tuple[bool, bool]
    human_points: int
    model_points: int
    human_streak: int  # perfect rounds in a row, this one included
    model_streak: int
    seconds: float
    timed_out: bool  # the clock ran out (the player's answer counted only if within the grace period)
    late: bool  # answered after the grace period: the player's answer did not count


def balanced_classes(rng: np.random.Generator, count: int, classes: int = GROUP_SIZE) -> np.ndarray:
    """``count`` class labels 0..classes-1 in random order, each appearing equally often (+-1)."""
    labels = np.tile(np.arange(classes), math.ceil(count / classes))[:count]
    rng.shuffle(labels)
    return labels


def deal_rounds(y_test: np.ndarray, seed: int, rounds: int = ROUNDS,
                alpha_range: tuple[float, float] | None = None) -> list[Round]:
    """Deal ``rounds`` rounds from the test labels, reproducibly for a seed.

    Each class appears equally often per group, and no test image appears twice in a game while its class has
    enough images. With ``alpha_range`` (unequal mixes), each round's weight of A is drawn uniformly from the
    range, on the mixer's 0.05 grid, from a stream of its own: the photos are those of the same seed without it.

    Raises:
        ValueError: when a class has no test image, or the range is not within the mixer's weights.
    """
    if rounds < 1:
        raise ValueError(f"a game needs at least one round; got {rounds}")
    y_test = np.asarray(y_test).reshape(-1)
    rng = np.random.default_rng(seed)
    firsts, seconds = balanced_classes(rng, rounds), balanced_classes(rng, rounds)
    a_indices = _pick_images(y_test, firsts, rng)
    b_indices = _pick_images(y_test, seconds + GROUP_SIZE, rng)
    alphas = [None] * rounds if alpha_range is None else round_weights(alpha_range, rounds, seed)
    return [Round(i + 1, int(a), int(b), int(f), int(s), w)
            for i, (a, b, f, s, w) in enumerate(zip(a_indices, b_indices, firsts, seconds, alphas))]


def check_alpha_range(alpha_range) -> tuple[float, float]:
    """``(low, high)`` as floats if ``low <= high`` and both lie within the mixer's weights (0.05-0.95).

    Raises:
        ValueError: naming the range and the bounds.
    """
    try:
        low, high = (round(float(value), 4) for value in alpha_range)
    except (TypeError, ValueError):
        raise ValueError(f"the range of weights of A must be two numbers (low, high); got {alpha_range!r}") from None
    if not mixing.ALPHA_MIN <= low <= high <= mixing.ALPHA_MAX:
        raise ValueError(f"the range of weights of A must lie within {mixing.ALPHA_MIN}-{mixing.ALPHA_MAX}, low "
                         f"first; got {low}-{high}")
    return low, high


def round_weights(alpha_range, rounds: int, seed: int) -> list[float]:
    """``rounds`` weights of A drawn uniformly from the range's 0.05-grid points, reproducibly for ``seed``."""
    low, high = check_alpha_range(alpha_range)
    grid = np.round(np.arange(low, high + 1e-9, mixing.ALPHA_STEP), 4)
    grid = grid if len(grid) else np.array([low])
    rng = np.random.default_rng([int(seed), 1])  # not the photos' stream: the same seed deals the same photos
    return [float(value) for value in rng.choice(grid, size=rounds)]


def _pick_images(y: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One test index per wanted class, without repeats inside a class when it has enough images."""
    picked = np.empty(len(classes), dtype=np.int64)
    for cls in np.unique(classes):
        slots = np.flatnonzero(classes == cls)
        members = np.flatnonzero(y == cls)
        if len(members) == 0:
            raise ValueError(f"the test set has no image of class {cls} ({CLASS_NAMES[cls]}); a game needs all ten")
        picked[slots] = rng.choice(members, size=len(slots), replace=len(members) < len(slots))
    return picked


def round_pair(game_round: Round, alpha: float = DEFAULT_ALPHA) -> pairs.Pair:
    """A round's mix as a pair: its two test images and its weight of A (the round's own, in unequal mixes,
    else ``alpha``, the game's)."""
    return pairs.Pair(game_round.a_index, game_round.b_index,
                      alpha if game_round.alpha is None else game_round.alpha)


def round_image(x_test: np.ndarray, game_round: Round, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """The mixed image of a round: float32 (32, 32, 3) pixels in [0, 255] (see :func:`round_pair`)."""
    return round_pair(game_round, alpha).image(x_test)


def model_answer(probabilities: Mapping[str, np.ndarray], row: int = 0) -> Answer:
    """The model's answer for one image from ``models.predict`` output: argmax per head and its probability."""
    first = np.asarray(probabilities["first"])[row]
    second = np.asarray(probabilities["second"])[row]
    return Answer(int(first.argmax()), int(second.argmax()), (float(first.max()), float(second.max())))


def round_points(correct: tuple[bool, bool], streak_before: int) -> tuple[int, int]:
    """Points for one round and the streak after it.

    Args:
        correct: whether each class was named right.
        streak_before: perfect rounds in a row right before this one.

    Returns:
        ``(points, streak_after)``.
    """
    points = POINTS_PER_CLASS * sum(bool(c) for c in correct)
    if all(correct):
        return points + min(STREAK_BONUS * streak_before, MAX_STREAK_BONUS), streak_before + 1
    return points, 0


# --------------------------------------------------------------------------------------------------- game


@dataclass
class Game:
    """A game in progress; create it with :func:`new_game`.

    Attributes:
        rounds: the dealt rounds.
        opponent: the model's reference (what the leaderboard shows).
        seed: the dealing seed (replays the same images).
        alpha: the mixing weight of component A (of every round in equal mixes).
        time_limit: seconds per round, or None.
        alpha_range: unequal mixes: the (low, high) weights of A the rounds were drawn from; None: equal mixes.
        results: one per answered round.
        position: index of the current round.
        stage: "guess", "reveal" or "over".
        score_id: the leaderboard row once saved (``record``), so a game is saved once.
        lesson_id: the lesson the game is played in (``cifarmix.lessons``), or None: the server-wide board.
        lesson_note: why a game of a lesson was saved on the server-wide board instead (the lesson was closed
            before it ended), once ``record`` did so; None otherwise.

    The current round's state (cleared by ``advance``):
        opponent_answer: the model's answer to it, once computed (the page asks the model before the round is
            shown, so a slow model does not eat into the player's time); None before.
        shown_at: the clock reading when it went on screen (see ``show_round``); None before.
        picks: the player's picks so far (``Answer``; None for a group not picked yet).
        picked_at: seconds from showing the round to each pick (first, second); None: not picked.
    """

    rounds: list[Round]
    opponent: str
    seed: int
    alpha: float = DEFAULT_ALPHA
    time_limit: float | None = None
    results: list[RoundResult] = field(default_factory=list)
    position: int = 0
    stage: str = "guess"
    score_id: int | None = None
    opponent_answer: Answer | None = None
    shown_at: float | None = None
    picks: Answer = NO_ANSWER
    picked_at: tuple[float | None, float | None] = (None, None)
    alpha_range: tuple[float, float] | None = None
    lesson_id: int | None = None
    lesson_note: str | None = None

    @property
    def mode(self) -> str:
        """``"equal"`` or ``"unequal"`` (mixes): what the leaderboard keeps apart."""
        return "equal" if self.alpha_range is None else "unequal"

    @property
    def current(self) -> Round | None:
        """The round being guessed or revealed; None when the game is over."""
        return None if self.stage == "over" else self.rounds[self.position]

    @property
    def last_result(self) -> RoundResult | None:
        return self.results[-1] if self.results else None

    @property
    def human_score(self) -> int:
        return sum(r.human_points for r in self.results)

    @property
    def model_score(self) -> int:
        return sum(r.model_points for r in self.results)

    @property
    def human_streak(self) -> int:
        return self.results[-1].human_streak if self.results else 0

    @property
    def model_streak(self) -> int:
        return self.results[-1].model_streak if self.results else 0

    @property
    def is_last_round(self) -> bool:
        return self.position == len(self.rounds) - 1

    # ------------------------------------------------------------------------------------- the current round

    def show_round(self, now: float | None = None) -> float:
        """Start the current round's clock, once (a later call keeps the first reading): call it when the round is
        on screen. Returns the clock reading it started at."""
        if self.shown_at is None:
            self.shown_at = _clock(now)
        return self.shown_at

    def seconds_into_round(self, now: float | None = None) -> float:
        """Seconds since the current round went on screen (0 before it did)."""
        return 0.0 if self.shown_at is None else _clock(now) - self.shown_at

    @property
    def deadline(self) -> float | None:
        """The clock reading at which the round's time runs out; None without a time limit or before it shows."""
        return None if self.time_limit is None or self.shown_at is None else self.shown_at + self.time_limit

    def out_of_time(self, now: float | None = None) -> bool:
        """True when the round is being guessed, is on screen, and its time limit has run out."""
        return self.stage == "guess" and self.deadline is not None and _clock(now) >= self.deadline

    def pick(self, head: str, choice: int, now: float | None = None) -> bool:
        """The player names ``choice`` (0-4 within the group) for ``head`` ("first" or "second"); a new pick of
        the same group replaces the old one, and its time. Ignored (False) unless the game waits for a guess: a
        click that arrives after the round was scored changes nothing.

        Raises:
            ValueError: an unknown head or a choice outside 0-4.
        """
        if head not in mixing.HEADS:
            raise ValueError(f"Expected head among {', '.join(mixing.HEADS)}; got {head!r}.")
        if choice not in range(GROUP_SIZE):
            raise ValueError(f"Expected a choice 0-{GROUP_SIZE - 1} within the group; got {choice!r}.")
        if self.stage != "guess":
            return False
        at = list(self.picked_at)
        at[mixing.HEADS.index(head)] = self.seconds_into_round(now)
        self.picks, self.picked_at = replace(self.picks, **{head: int(choice)}), (at[0], at[1])
        return True

    @property
    def ready(self) -> bool:
        """True when the player has picked a class in both groups (the Submit button's condition)."""
        return self.picks.first is not None and self.picks.second is not None

    def submit(self, now: float | None = None) -> RoundResult | None:
        """Score the current round with the picks so far and the model's answer (the Submit button, or the clock
        running out; see :meth:`answer`). Returns None, changing nothing, when the game is not waiting for a guess
        (a double click, or the clock and the button at once).

        Raises:
            RuntimeError: the model has not answered the round yet (``opponent_answer``).
        """
        if self.stage != "guess":
            return None
        if self.opponent_answer is None:
            raise RuntimeError("the model has not answered this round yet; set opponent_answer before submitting")
        return self.answer(self.picks, self.opponent_answer, self.seconds_into_round(now), self.picked_at)

    # --------------------------------------------------------------------------------------- scoring, stages

    def answer(self, human: Answer, model: Answer, seconds: float,
               picked_at: tuple[float | None, float | None] = (None, None)) -> RoundResult:
        """Score the current round for both players and move to its reveal.

        With a time limit, a pick counts if it was made within the limit (plus ``LATE_GRACE_S``), however late the
        answer itself arrives (a phone that slept through the clock's end still scores the picks made in time);
        a pick made later does not count, and the round is marked ``late``.

        Args:
            human: the player's picks (None for a group not picked).
            model: the model's answer (see :func:`model_answer`).
            seconds: time from showing the round to the answer.
            picked_at: time from showing the round to each pick (first, second); None: taken as ``seconds``.

        Raises:
            RuntimeError: when the game is not waiting for a guess.
        """
        if self.stage != "guess":
            raise RuntimeError(f"the game is in its {self.stage!r} stage; answer only while it waits for a guess")
        game_round = self.rounds[self.position]
        timed_out = self.time_limit is not None and seconds >= self.time_limit
        counted = human
        if self.time_limit is not None:
            cutoff = self.time_limit + LATE_GRACE_S
            in_time = [(seconds if at is None else at) <= cutoff for at in picked_at]
            counted = Answer(human.first if in_time[0] else None, human.second if in_time[1] else None)
        late = counted != Answer(human.first, human.second)
        human_correct = _correct(counted, game_round)
        model_correct = _correct(model, game_round)
        human_points, human_streak = round_points(human_correct, self.human_streak)
        model_points, model_streak = round_points(model_correct, self.model_streak)
        result = RoundResult(game_round, counted, model, human_correct, model_correct, human_points, model_points,
                             human_streak, model_streak, float(seconds), timed_out, late)
        self.results.append(result)
        self.stage = "reveal"
        return result

    def advance(self) -> None:
        """Leave the reveal: go to the next round, or end the game after the last one."""
        if self.stage != "reveal":
            raise RuntimeError(f"the game is in its {self.stage!r} stage; advance only from a reveal")
        if self.is_last_round:
            self.stage = "over"
        else:
            self.position += 1
            self.stage = "guess"
        self.opponent_answer, self.shown_at, self.picks, self.picked_at = None, None, NO_ANSWER, (None, None)

    def details(self) -> dict:
        """JSON-able record of the game for the leaderboard's ``details`` column."""
        return {
            "seed": self.seed, "alpha": self.alpha, "time_limit": self.time_limit, "mode": self.mode,
            "alpha_range": None if self.alpha_range is None else list(self.alpha_range),
            "rounds": [{"a": r.round.a_index, "b": r.round.b_index, "alpha": round_pair(r.round, self.alpha).alpha,
                        "human": list(r.human.classes()), "model": list(r.model.classes()),
                        "points": [r.human_points, r.model_points], "seconds": round(r.seconds, 2)}
                       for r in self.results],
        }


def _clock(now: float | None) -> float:
    return time.monotonic() if now is None else float(now)


def _correct(answer: Answer, game_round: Round) -> tuple[bool, bool]:
    return answer.first == game_round.first, answer.second == game_round.second


def new_game(y_test: np.ndarray, seed: int, opponent: str, rounds: int = ROUNDS, alpha: float = DEFAULT_ALPHA,
             time_limit: float | None = None, alpha_range: tuple[float, float] | None = None,
             lesson_id: int | None = None) -> Game:
    """A new game dealt from the test labels (see :func:`deal_rounds`); with ``alpha_range``, unequal mixes; with
    ``lesson_id``, played in that lesson (saved there by :func:`record` while it is open)."""
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"the time limit must be a positive number of seconds or None; got {time_limit}")
    alpha_range = None if alpha_range is None else check_alpha_range(alpha_range)
    return Game(deal_rounds(y_test, seed, rounds, alpha_range), str(opponent), int(seed), mixing.check_alpha(alpha),
                None if time_limit is None else float(time_limit), alpha_range=alpha_range,
                lesson_id=None if lesson_id is None else int(lesson_id))


def random_guesser(game: Game) -> Callable[[np.ndarray], dict]:
    """The random guesser's ``predict`` for the game's current round: one class per group, uniformly at random,
    the same for a replay of the round (seeded by the game and the round). An untrained network is no random
    guesser: it names nearly the same class for every picture (measured: 397 of 400 test mixes one class)."""
    rng = np.random.default_rng([game.seed, game.position])

    def predict(images: np.ndarray) -> dict:
        return {head: np.eye(GROUP_SIZE)[rng.integers(0, GROUP_SIZE, len(images))] for head in ("first", "second")}

    return predict


def play_model_round(game: Game, x_test: np.ndarray, predict: Callable[[np.ndarray], dict]) -> tuple[np.ndarray, Answer]:
    """The current round's mixed image and the model's answer to it (``predict`` as ``models.predict``)."""
    image = round_image(x_test, game.current, game.alpha)
    return image, model_answer(predict(image[None]))


# ---------------------------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class ClassResult:
    """How player and model did on one CIFAR-10 class over the rounds where it was an answer."""

    class_index: int
    rounds: int
    human_correct: int
    model_correct: int

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.class_index]

    @property
    def winner(self) -> str:
        """"human", "model" or "tie"."""
        if self.human_correct == self.model_correct:
            return "tie"
        return "human" if self.human_correct > self.model_correct else "model"


def class_summary(results: list[RoundResult]) -> list[ClassResult]:
    """Per CIFAR-10 class (those that came up), how often player and model named it right."""
    counts: dict[int, list[int]] = {}
    for result in results:
        for head, cls in enumerate(result.round.true_classes):
            row = counts.setdefault(cls, [0, 0, 0])
            row[0] += 1
            row[1] += int(result.human_correct[head])
            row[2] += int(result.model_correct[head])
    return [ClassResult(cls, *counts[cls]) for cls in sorted(counts)]


def hardest_pair_met(results: list[RoundResult]) -> dict | None:
    """The pair of classes (class of A, class of B) the player did worst on over a game's rounds
    (``breakdowns.pair_breakdown`` of the player's answers; ties: the pair met most often, then the first).

    Returns:
        ``{"a": 0-4, "b": 5-9 (CIFAR-10 classes), "human": the player's share of right halves on it, "model": the
        opponent's, "count": rounds with that pair, "rounds": their numbers}``, or None for a game without
        rounds.
    """
    from cifarmix import breakdowns

    if not results:
        return None
    a_classes = [r.round.first for r in results]
    b_classes = [r.round.second for r in results]
    human = breakdowns.pair_breakdown(a_classes, b_classes, [r.human_correct[0] for r in results],
                                      [r.human_correct[1] for r in results])
    model = breakdowns.pair_breakdown(a_classes, b_classes, [r.model_correct[0] for r in results],
                                      [r.model_correct[1] for r in results])
    worst = breakdowns.hardest_pair(human)
    a, b = worst["a"], worst["b"] - GROUP_SIZE
    return {"a": a, "b": worst["b"], "human": worst["mean_accuracy"], "model": model["mean_accuracy"][a][b],
            "count": worst["count"],
            "rounds": [r.round.number for r in results if (r.round.first, r.round.second) == (a, b)]}


def hardest_pair_sentence(results: list[RoundResult], opponent: str = "") -> str:
    """One markdown sentence for the end of a game: the hardest pair the player met, and how the opponent did
    on it; or that every pair was named right."""
    worst = hardest_pair_met(results)
    if worst is None:
        return ""
    if worst["human"] == 1.0:
        return "You named both photos right in every round: no pair of classes caught you out."
    halves = 2 * worst["count"]
    rounds = ", ".join(str(n) for n in worst["rounds"])
    them = opponent_noun(opponent)
    return (f"**The hardest pair you met:** {class_label(worst['a'])} + {class_label(worst['b'])} "
            f"(round{'s' if worst['count'] > 1 else ''} {rounds}): you named {round(worst['human'] * halves)} of "
            f"{halves} photos right; {them} named {round(worst['model'] * halves)}.")


def verdict(human_score: int, model_score: int) -> str:
    """"human", "model" or "tie" for a final score."""
    if human_score == model_score:
        return "tie"
    return "human" if human_score > model_score else "model"


def guess_rows(game: Game) -> list[dict]:
    """One row per head and round, as ``RunStore.add_score(guesses=...)`` takes them. A head the player left
    unanswered (or answered too late) is left out: it says nothing about which classes people recognise."""
    rows = []
    for result in game.results:
        for head, truth, human, model in zip(mixing.HEADS, result.round.true_classes, result.human.classes(),
                                             result.model.classes()):
            if human is None:
                continue  # no guess: nothing to learn about which class fooled people
            rows.append({"head": head, "true_class": truth, "human_class": human, "model_class": model,
                         "opponent": game.opponent})
    return rows


def record(game: Game, store, player: str) -> int:
    """Save a finished game once: its guesses (for the classroom table) and its score (for the leaderboard), in
    one transaction. A save that failed (a full disk) saved nothing and can simply be called again.

    A game of a lesson is saved in the lesson; if the lesson was closed before the game ended, the game is not
    lost: it is saved on the server-wide board, ``game.lesson_id`` becomes None and ``game.lesson_note`` says why.

    Args:
        game: a game in its "over" stage.
        store: a ``RunStore``.
        player: the name typed by the player (cleaned by the store; an empty name becomes "anonymous").

    Returns:
        The score id (the same id again if the game was already saved).
    """
    if game.stage != "over":
        raise RuntimeError("only a finished game is saved; play its last round first")
    if game.score_id is None:
        from cifarmix.store import LessonClosedError, clean_player_name

        try:
            name = clean_player_name(player)
        except ValueError:
            name = "anonymous"

        def save(lesson_id: int | None) -> int:
            return store.add_score(name, game.human_score, len(game.results), game.opponent, game.model_score,
                                   game.details(), guesses=guess_rows(game), mode=game.mode, lesson_id=lesson_id)

        try:
            game.score_id = save(game.lesson_id)
        except LessonClosedError as error:  # closed while the game was played: nothing saved; keep it outside
            game.score_id = save(None)
            game.lesson_id = None
            game.lesson_note = (f"This game was not saved in its lesson: {error}. It is on the server-wide board "
                                "instead.")
    return game.score_id


def classroom_summary(frame) -> list[dict]:
    """Rows of ``RunStore.class_accuracy()`` with class names and who does better on each class.

    Returns:
        Dicts with class_index, name, rounds, human_accuracy, model_rounds, model_accuracy (None when no model
        has answered on the class yet) and winner ("human"/"model"/"tie", None without a model's answers).
    """
    rows = []
    for row in frame.itertuples(index=False):
        human, model = float(row.human_accuracy), float(row.model_accuracy)
        if model != model:  # NaN: only the random guesser has played on this class
            model, winner = None, None
        else:
            winner = "tie" if abs(human - model) < 1e-9 else "human" if human > model else "model"
        rows.append({"class_index": int(row.class_index), "name": CLASS_NAMES[int(row.class_index)],
                     "rounds": int(row.rounds), "human_accuracy": human, "model_rounds": int(row.model_rounds),
                     "model_accuracy": model, "winner": winner})
    return rows


def mode_text(mode: str, alpha_range=None) -> str:
    """How a page names a game's mode: ``"equal mixes (50 / 50)"``, ``"unequal mixes (A 20-80%)"``."""
    if mode not in MODES:
        raise ValueError(f"Expected a game mode among {', '.join(MODES)}; got {mode!r}.")
    if mode == "equal":
        return MODES[mode].lower()
    span = f" (A {alpha_range[0]:.0%}-{alpha_range[1]:.0%})" if alpha_range else ""
    return MODES[mode].lower() + span.replace("%-", "-")


def opponent_noun(reference: str, sentence_start: bool = False) -> str:
    """How the end of a game names the opponent (the random guesser is no model); capitalised to start a
    sentence."""
    noun = f"the {opponent_label(reference).lower()}"
    return noun[0].upper() + noun[1:] if sentence_start else noun


def opponent_label(reference: str) -> str:
    """The opponent's name on a score or a column head: ``"Model"``, or ``"Random guesser"``."""
    return "Random guesser" if reference == BASELINE_OPPONENT else "Model"


def who_did_better(rows, opponent: str = "") -> str:
    """One markdown sentence after a game: the classes where the player did better, and those where the opponent
    (a model reference; the random guesser is named so) did (``rows`` from :func:`class_summary`)."""
    human_wins = [class_label(c.class_index) for c in rows if c.winner == "human"]
    model_wins = [class_label(c.class_index) for c in rows if c.winner == "model"]
    them = opponent_noun(opponent, sentence_start=True)
    return " ".join([f"**You** did better on {', '.join(human_wins)}." if human_wins else
                     "You did better on no class.",
                     f"**{them}** did better on {', '.join(model_wins)}." if model_wins else
                     f"{them} did better on no class."])


def classroom_sentence(rows: list[dict]) -> str:
    """One markdown sentence over every game: where people beat the models and where models beat people."""
    people = [class_label(r["class_index"]) for r in rows if r["winner"] == "human"]
    models = [class_label(r["class_index"]) for r in rows if r["winner"] == "model"]
    return (f"**People** beat the models on {', '.join(people) or 'no class yet'}; "
            f"**models** beat people on {', '.join(models) or 'no class yet'}.")
