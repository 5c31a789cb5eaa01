"""cifarmix.shelf: games in progress kept under unguessable tokens, bounded and expiring."""

from __future__ import annotations

import pytest

from cifarmix.shelf import Shelf


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_value_comes_back_under_its_token_until_dropped():
    shelf = Shelf()
    game = object()
    token = shelf.put(game)
    assert len(token) >= 20 and shelf.get(token) is game  # the same object: same round, picks, clock
    assert shelf.get("not-a-token") is None and shelf.get(None) is None
    shelf.drop(token)
    assert shelf.get(token) is None
    assert len({shelf.put(n) for n in range(100)}) == 100  # tokens are not reused


def test_an_untouched_value_expires_and_a_touched_one_lives_on():
    clock = Clock()
    shelf = Shelf(ttl_s=10, clock=clock)
    kept, forgotten = shelf.put("kept"), shelf.put("forgotten")
    clock.now = 8
    assert shelf.get(kept) == "kept"  # touched: its ten seconds start again
    clock.now = 15
    assert shelf.get(kept) == "kept" and shelf.get(forgotten) is None
    assert len(shelf) == 1


def test_past_its_capacity_the_oldest_goes():
    shelf = Shelf(capacity=2)
    first, second = shelf.put(1), shelf.put(2)
    shelf.get(first)  # the most recently used now
    shelf.put(3)
    assert shelf.get(second) is None and shelf.get(first) == 1 and len(shelf) == 2
    with pytest.raises(ValueError, match="capacity"):
        Shelf(capacity=0)
