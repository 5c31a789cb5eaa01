"""A mix of two test images as the Mixer, the Game and ``cli mix`` name it: its two test indices and the weight
of A; its URL form (``?a=&b=&w=``); random pairs, gallery pairs and gallery captions. No UI here.

Component A is a test image of group A (classes 0-4, airplane … deer), component B one of group B (classes 5-9,
dog … truck); the mix is ``alpha · A + (1 - alpha) · B`` (``mixing.mix``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cifarmix import mixing
from cifarmix.data import CLASS_NAMES

DEFAULT_ALPHA = 0.5
GROUP_SIZE = 5
# side -> (the group's classes, how a message names the group)
SIDES = {"a": (range(GROUP_SIZE), "group A (airplane … deer)"),
         "b": (range(GROUP_SIZE, 2 * GROUP_SIZE), "group B (dog … truck)")}
LINK_VALUE_LIMIT = 40  # characters of a link value quoted back in a message


@dataclass(frozen=True)
class Pair:
    """A mixed image: test indices of both components and the weight of A."""

    a_index: int
    b_index: int
    alpha: float = DEFAULT_ALPHA

    def to_query(self) -> dict[str, str]:
        """URL query parameters that reproduce the pair (``a``, ``b``, ``w``); :func:`pair_from_query` reads them."""
        return {"a": str(self.a_index), "b": str(self.b_index), "w": f"{self.alpha:g}"}

    def image(self, x_test: np.ndarray) -> np.ndarray:
        """The mixed image: float32 (32, 32, 3) pixels in [0, 255]."""
        return mixing.mix(x_test[self.a_index], x_test[self.b_index], self.alpha)


def class_members(y_test: np.ndarray, cls: int) -> np.ndarray:
    """Test indices of the images of one CIFAR-10 class, ascending (the mixer's "image n°" counts in it)."""
    return np.flatnonzero(np.asarray(y_test).reshape(-1) == int(cls))


def random_pair(y_test: np.ndarray, rng: np.random.Generator, first: int | None = None, second: int | None = None,
                alpha: float = DEFAULT_ALPHA) -> Pair:
    """A random pair; ``first`` (0-4) / ``second`` (5-9) restrict a component to one CIFAR-10 class."""
    y_test = np.asarray(y_test).reshape(-1)
    a_pool = np.flatnonzero(y_test == first) if first is not None else np.flatnonzero(y_test < GROUP_SIZE)
    b_pool = np.flatnonzero(y_test == second) if second is not None else np.flatnonzero(y_test >= GROUP_SIZE)
    if len(a_pool) == 0 or len(b_pool) == 0:
        raise ValueError("the test set has no image of the requested class")
    return Pair(int(rng.choice(a_pool)), int(rng.choice(b_pool)), mixing.check_alpha(alpha))


def component_problem(index: int, y_test: np.ndarray, side: str) -> str | None:
    """Why test image ``index`` cannot be component ``side`` ("a" or "b") of a mix, to follow "… is": ``"outside
    the test set (0–399)"``, ``"a dog, not of group A (airplane … deer)"``; None when it can."""
    y_test = np.asarray(y_test).reshape(-1)
    classes, group = SIDES[side]
    if not 0 <= index < len(y_test):
        return f"outside the test set (0–{len(y_test) - 1})"
    if int(y_test[index]) not in classes:
        name = CLASS_NAMES[int(y_test[index])]
        return f"{'an' if name[0] in 'aeiou' else 'a'} {name}, not of {group}"
    return None


def pair_of(y_test: np.ndarray, rng: np.random.Generator, a_index: int | None = None, b_index: int | None = None,
            alpha: float = DEFAULT_ALPHA) -> Pair:
    """The pair of the given components, a random image of its group for each one not given (``cli mix``).

    Raises:
        ValueError: a given index is no image of its group (the message says why), or the weight is not
            strictly between 0 and 1.
    """
    y_test = np.asarray(y_test).reshape(-1)
    chosen = {}
    for side, index in (("a", a_index), ("b", b_index)):
        if index is None:
            chosen[side] = int(rng.choice(np.flatnonzero(np.isin(y_test, SIDES[side][0]))))
            continue
        problem = component_problem(int(index), y_test, side)
        if problem:
            raise ValueError(f"test image {index} is {problem}")
        chosen[side] = int(index)
    return Pair(chosen["a"], chosen["b"], mixing.check_alpha(alpha))


def pair_from_query(query: Mapping[str, str], y_test: np.ndarray,
                    rng: np.random.Generator) -> tuple[Pair | None, list[str]]:
    """Read a pair from URL query parameters ``a``, ``b`` (test indices) and ``w`` (weight of A).

    Returns:
        ``(pair, problems)``: ``(None, [])`` when the URL names no pair; otherwise a pair in which every missing
        or bad value was replaced by a random (or default) one, and one sentence per replaced value.
    """
    if not any(key in query for key in ("a", "b", "w")):
        return None, []
    y_test = np.asarray(y_test).reshape(-1)
    problems: list[str] = []
    fallback = random_pair(y_test, rng)
    a = _index_param(query, "a", y_test, problems)
    b = _index_param(query, "b", y_test, problems)
    alpha = _alpha_param(query, problems)
    return Pair(fallback.a_index if a is None else a, fallback.b_index if b is None else b, alpha), problems


def shown_link_value(text, limit: int = LINK_VALUE_LIMIT) -> str:
    """A link value as quoted back to the user: cut to ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _index_param(query, key: str, y: np.ndarray, problems: list[str]) -> int | None:
    text = query.get(key)
    if text is None:
        problems.append(f"'{key}' is missing from the link; a random image of {SIDES[key][1]} is shown.")
        return None
    try:
        index = int(str(text).strip())
    except ValueError:
        problems.append(f"'{key}={shown_link_value(text)}' in the link is not a test image number; "
                        "a random image is shown.")
        return None
    problem = component_problem(index, y, key)
    if problem:
        problems.append(f"'{key}={index}' in the link is {problem}; a random image is shown.")
        return None
    return index


def _alpha_param(query, problems: list[str]) -> float:
    text = query.get("w")
    if text is None:
        return DEFAULT_ALPHA
    try:
        alpha = mixing.check_alpha(float(str(text).strip()))
    except ValueError:
        problems.append(f"'w={shown_link_value(text)}' in the link is not a mixing weight strictly between 0 and 1; "
                        f"{DEFAULT_ALPHA} is used.")
        return DEFAULT_ALPHA
    if not mixing.ALPHA_MIN <= alpha <= mixing.ALPHA_MAX:
        nearest = min(max(alpha, mixing.ALPHA_MIN), mixing.ALPHA_MAX)
        problems.append(f"'w={shown_link_value(text)}' in the link is outside the mixer's range "
                        f"({mixing.ALPHA_MIN}–{mixing.ALPHA_MAX}); "
                        f"{nearest} is used.")
        return nearest
    return round(alpha, 4)


# -------------------------------------------------------------------------------------------------- gallery


def gallery_pairs(y_test: np.ndarray, seed: int, count: int, alpha: float = DEFAULT_ALPHA) -> list[Pair]:
    """``count`` random pairs fixed by ``seed`` (the mixer's "can you guess the classes?" grid)."""
    rng = np.random.default_rng(seed)
    return [random_pair(y_test, rng, alpha=alpha) for _ in range(count)]


def pair_images(x_test: np.ndarray, pairs: list[Pair]) -> np.ndarray:
    """The mixed images of ``pairs``: float32 (N, 32, 32, 3), each with its own weight."""
    if not pairs:
        return np.zeros((0, 32, 32, 3), dtype=np.float32)
    return np.stack([pair.image(x_test) for pair in pairs])


GALLERY_SHOWS = ("nothing", "model", "answers")  # what a gallery caption gives away, least first


def gallery_caption(truth: tuple[int, int], guess: tuple[int, int] | None, show: str) -> str:
    """A gallery mix's caption: ``?`` (show nothing: the class guesses first), ``🤖 cat + truck`` (the model's
    guesses, no answers), or the answers: ``✅ cat + ❌ truck → dog`` (with the model) or ``cat + dog``."""
    if show not in GALLERY_SHOWS:
        raise ValueError(f"Expected show among {', '.join(GALLERY_SHOWS)}; got {show!r}.")
    names = CLASS_NAMES
    if show == "nothing" or (show == "model" and guess is None):
        return "?"
    if show == "model":
        return f"🤖 {names[guess[0]]} + {names[guess[1]]}"
    if guess is None:
        return f"{names[truth[0]]} + {names[truth[1]]}"
    parts = [f"✅ {names[g]}" if g == t else f"❌ {names[g]} → {names[t]}" for g, t in zip(guess, truth)]
    return " + ".join(parts)
