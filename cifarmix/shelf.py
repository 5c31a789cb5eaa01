"""Things in progress kept aside under an unguessable token, for a while: a game to resume after a page refresh.

Streamlit's session state dies with the browser's websocket, so a refresh (or a phone that dropped its
connection for long) starts a new, empty session. The Game page puts its game in progress on a ``Shelf`` under a
token it writes into the page's URL (``?game=<token>``); the refreshed page finds it there and goes on with the
same object: same round, same picks, same clock.

Bounded (the oldest entry goes first past ``capacity``) and expiring (an entry not touched for ``ttl_s`` seconds
is gone), so abandoned games cannot fill the server's memory. In-process: with several server processes the
proxy's sticky cookie sends a refreshed page back to the process that holds its game (``cifarmix.serving``); a
restarted server has forgotten every game in progress (finished games are in the run store). Thread-safe.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

DEFAULT_CAPACITY = 5_000
DEFAULT_TTL_S = 3 * 3600.0  # longer than any lesson
TOKEN_BYTES = 16  # 128 bits: not guessable, however many tries


class Shelf:
    """``put(value) -> token``, ``get(token) -> value or None``, ``drop(token)``."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ttl_s: float = DEFAULT_TTL_S, clock=time.monotonic):
        if capacity < 1 or ttl_s <= 0:
            raise ValueError(f"a shelf needs a capacity of 1 or more and a positive lifetime; got {capacity}, "
                             f"{ttl_s}")
        self.capacity, self.ttl_s, self._clock = capacity, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # token -> (last touched, value)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._items)

    def put(self, value: Any) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            now = self._clock()
            self._items[token] = (now, value)
            self._expire(now)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return token

    def get(self, token: str | None) -> Any | None:
        """The value under ``token`` (its lifetime starts again), or None: unknown, expired or pushed out."""
        if not token:
            return None
        with self._lock:
            now = self._clock()
            self._expire(now)
            found = self._items.get(token)
            if found is None:
                return None
            self._items[token] = (now, found[1])
            self._items.move_to_end(token)
            return found[1]

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._items.pop(token or "", None)

    def _expire(self, now: float) -> None:
        while self._items:
            token, (touched, _) = next(iter(self._items.items()))
            if now - touched < self.ttl_s:
                return
            del self._items[token]
