"""A model's answers to test-image mixes, remembered: each (pair, weight) is predicted once per model file.

A mix of two test images is fixed by its pair and its weight of A, so the model's probabilities for it never
change while the model file does not. A class playing the same game seed, a Mixer gallery drawn again, a slider
moved back: all ask again for answers the server already computed. ``AnswerCache`` keeps the last ``capacity``
answers (least recently used out; ~100 bytes each) and asks the model, in one batch, only for the pairs it does
not hold. The answers are the model's own (``models.predict`` of the same mixed images), so nothing a player
sees changes, only what it costs. Thread-safe: every session of a server shares one cache per model.

Not for mixes of a user's own photos: those are no pair of test images, and nothing derived from an upload is
kept beyond its session.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from cifarmix import pairs
from cifarmix.heads import HEADS

DEFAULT_CAPACITY = 20_000


class AnswerCache:
    """``predict_pairs(pairs, x_test)`` -> ``{"first": (N, 5), "second": (N, 5)}`` probabilities, as
    ``predict(pairs.pair_images(x_test, pairs))`` would return, each pair computed once."""

    def __init__(self, predict: Callable[[np.ndarray], dict], capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ValueError(f"an answer cache holds at least 1 answer; got capacity {capacity}")
        self._predict = predict
        self.capacity = capacity
        self._answers: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # pairs the model was asked for (the rest came from the cache)

    def __len__(self) -> int:
        return len(self._answers)

    @staticmethod
    def key(pair: pairs.Pair) -> tuple:
        return int(pair.a_index), int(pair.b_index), float(pair.alpha)

    def predict_pairs(self, asked: Sequence[pairs.Pair], x_test: np.ndarray) -> dict[str, np.ndarray]:
        keys = [self.key(pair) for pair in asked]
        with self._lock:
            known = {key: self._answers[key] for key in keys if key in self._answers}
            for key in known:
                self._answers.move_to_end(key)
        missing = list(dict.fromkeys(key for key in keys if key not in known))
        if missing:
            found = self._predict(pairs.pair_images(x_test, [pairs.Pair(*key) for key in missing]))
            fresh = {key: tuple(np.array(found[head][row], dtype=np.float32) for head in HEADS)
                     for row, key in enumerate(missing)}
            with self._lock:
                self.computed += len(missing)
                for key, answer in fresh.items():
                    self._answers[key] = answer
                    self._answers.move_to_end(key)
                while len(self._answers) > self.capacity:
                    self._answers.popitem(last=False)
            known.update(fresh)
        return {head: (np.stack([known[key][i] for key in keys]) if keys else np.zeros((0, 5), np.float32))
                for i, head in enumerate(HEADS)}
