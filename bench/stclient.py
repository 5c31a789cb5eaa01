"""A light Streamlit client: one app session over Streamlit's own websocket protocol, without a browser.

It speaks what Streamlit's frontend speaks on ``/_stcore/stream``: binary ``BackMsg`` protobufs up (a
``rerun_script`` with the page, the query string and the widget states; a button click is a ``trigger_value``),
binary ``ForwardMsg`` protobufs down (the ``delta`` elements of the page, then ``script_finished``). From the deltas
it learns each widget's id (found by the widget's ``key``, or by its label), the fragment it was drawn in (a click
inside an ``st.fragment`` reruns only that fragment, as the browser does), and the URLs of the images, which it
fetches like a browser (``/media/...``), so the server pays for them too.

Why not real browsers: a headless Chromium costs more CPU than the server it loads (issue 16: with 20 browser
sessions the browsers took most of the two cores), so a load test with browsers measures the browsers. This client
costs ~1% of that. What it does not do is render, run the countdown fragment's timer (``auto_rerun``), or upload
files; ``tests/test_browser.py`` and the Playwright test of ``tests/test_classroom.py`` cover the real browser.

    session = Session("http://127.0.0.1:8501", page="game")
    await session.open()                       # the page load: a first script run
    await session.click("game_pick_3")         # a button by key (or session.click(label="Start a 10-round game"))
    session.text()                             # every markdown / heading / metric text now on the page
    session.query                              # the page's query string, as the browser's URL would show it
    await session.close()

Leans on Streamlit internals as of 1.67: the ``streamlit.proto`` messages, the ``$$ID-<hash>-<key>`` widget ids
and the subprotocol header (``streamlit``, XSRF token, session id to reconnect).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

RUN_TIMEOUT_S = 120
TEXT_KINDS = ("markdown", "heading", "alert", "text")


class ClientError(RuntimeError):
    """The server did not answer as a browser would expect (no such widget, a run that never finished)."""


@dataclass
class Widget:
    id: str
    kind: str  # the element's type: "button", "text_input", "slider", ...
    label: str
    fragment_id: str = ""
    disabled: bool = False
    proto: object = None


def initial_state(widget: Widget) -> WidgetState | None:
    """The value a widget was drawn with, as the frontend reports it (None for buttons and kinds not handled)."""
    body, state = widget.proto, WidgetState(id=widget.id)
    chosen = getattr(body, "set_value", False)
    if widget.kind == "selectbox" and (chosen or body.options):
        state.string_value = body.raw_value if chosen else body.options[body.default]
    elif widget.kind == "text_input":
        state.string_value = body.value if chosen else body.default
    elif widget.kind == "button_group":
        state.string_array_value.data.extend(list(body.raw_values) if chosen
                                             else [body.options[i].content for i in body.default])
    elif widget.kind == "slider":
        state.double_array_value.data.extend(body.value if chosen else body.default)
    elif widget.kind == "number_input":
        value = body.value if chosen else body.default
        if body.data_type == body.INT:
            state.int_value = int(value)
        else:
            state.double_value = value
    elif widget.kind == "checkbox":
        state.bool_value = body.value if chosen else body.default
    else:
        return None
    return state


@dataclass
class Session:
    """One browser tab's session of the app at ``url`` (``http://host:port``), on ``page`` (its URL path)."""

    url: str
    page: str = ""
    query: str = ""
    fetch_media: bool = True
    widgets: dict[str, Widget] = field(default_factory=dict)  # by key (or label for an unkeyed widget)
    elements: dict[tuple, tuple[str, object, str]] = field(default_factory=dict)  # path -> (kind, proto, fragment)
    session_id: str = ""
    page_hash: str = ""  # the page's script hash, from the server's navigation message
    media_bytes: int = 0
    cookies: str = ""

    def __post_init__(self):
        self._socket = None
        self._states: dict[str, WidgetState] = {}  # each widget's value, as the frontend keeps it (sent every rerun)
        self._messages: asyncio.Queue = asyncio.Queue()
        self._reader = None
        self._media: list[str] = []

    # --------------------------------------------------------------------------------------------- connection

    async def open(self) -> float:
        """Connect and run the page once (the page load). Returns the seconds until it was drawn."""
        started = time.perf_counter()
        if not self.cookies:  # the page itself first, as a browser: a proxy in front may set its route cookie
            await asyncio.to_thread(self._load_page)
        ws_url = self.url.replace("http", "ws", 1).rstrip("/") + "/_stcore/stream"
        headers = {"Cookie": self.cookies} if self.cookies else None
        self._socket = await connect(ws_url, subprotocols=["streamlit"], additional_headers=headers,
                                     max_size=None, open_timeout=RUN_TIMEOUT_S, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        await self._run(fragment_id="")
        return time.perf_counter() - started

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for data in self._socket:
                message = ForwardMsg()
                message.ParseFromString(data)
                await self._messages.put(message)
        except Exception as error:  # noqa: BLE001 (a closed socket ends the reader; a waiting run sees it)
            await self._messages.put(error)

    # -------------------------------------------------------------------------------------------- interaction

    def find(self, key: str | None = None, label: str | None = None) -> Widget:
        """The widget drawn with ``key`` (or, unkeyed, with ``label``) in the last run."""
        found = self.widgets.get(key) if key is not None else next(
            (w for w in self.widgets.values() if w.label == label), None)
        if found is None:
            raise ClientError(f"no widget {key or label!r} on the page; widgets: {sorted(self.widgets)}; its text: "
                              f"{self.text()[:600]!r}")
        return found

    def has(self, key: str | None = None, label: str | None = None) -> bool:
        try:
            self.find(key, label)
        except ClientError:
            return False
        return True

    async def click(self, key: str | None = None, label: str | None = None) -> float:
        """Press a button; returns the seconds until the page (or fragment) was drawn and its images fetched."""
        widget = self.find(key, label)
        if widget.disabled:
            raise ClientError(f"{key or label!r} is disabled")
        trigger = WidgetState(id=widget.id, trigger_value=True)
        return await self._run(widget.fragment_id, extra=[trigger])

    async def set_value(self, key: str, **value) -> float:
        """Change a widget's value, e.g. ``set_value("game_player", string_value="Ada")``,
        ``set_value("mixer_alpha", double_array_value=[0.3])``."""
        widget = self.find(key)
        state = WidgetState(id=widget.id)
        for name, given in value.items():
            if isinstance(given, list):
                getattr(state, name).data.extend(given)
            else:
                setattr(state, name, given)
        self._states[widget.id] = state
        return await self._run(widget.fragment_id)

    async def _run(self, fragment_id: str, extra: list[WidgetState] = ()) -> float:
        started = time.perf_counter()
        message = BackMsg()
        rerun = message.rerun_script
        rerun.query_string = self.query
        # as the frontend: the URL's page by name for the first run, then the page the server said it runs
        rerun.page_script_hash = self.page_hash
        rerun.page_name = "" if self.page_hash else self.page
        rerun.fragment_id = fragment_id
        # as the frontend does: every widget on the page sends its value (the user's, or the one it was drawn with)
        shown = [self._states[w.id] for w in self.widgets.values() if w.id in self._states]
        rerun.widget_states.widgets.extend(shown + list(extra))
        await self._socket.send(message.SerializeToString())
        await self._until_finished(fragment_id)
        if self.fetch_media and self._media:
            urls, self._media = self._media, []
            self.media_bytes += sum(await asyncio.gather(*(asyncio.to_thread(self._get, url) for url in urls)))
        return time.perf_counter() - started

    def _load_page(self) -> None:
        with urllib.request.urlopen(f"{self.url}/{self.page}", timeout=RUN_TIMEOUT_S) as response:
            response.read()
            found = [header.split(";", 1)[0] for header in response.headers.get_all("Set-Cookie") or []]
        self.cookies = "; ".join(found)

    def _get(self, url: str) -> int:
        request = urllib.request.Request(urllib.parse.urljoin(self.url + "/", url.lstrip("/")),
                                         headers={"Cookie": self.cookies} if self.cookies else {})
        with urllib.request.urlopen(request, timeout=RUN_TIMEOUT_S) as response:
            return len(response.read())

    async def _until_finished(self, fragment_id: str) -> None:
        """Apply the run's messages until its ``script_finished`` (a run cut short by ``st.rerun`` goes on)."""
        self._forget(fragment_id)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            try:
                message = await asyncio.wait_for(self._messages.get(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise ClientError(f"no script_finished within {RUN_TIMEOUT_S} s") from None
            if isinstance(message, Exception):
                raise ClientError(f"the connection closed: {message}") from message
            kind = message.WhichOneof("type")
            if kind == "new_session":
                self.session_id = message.new_session.initialize.session_id or self.session_id
            elif kind == "navigation":  # st.navigation's page for this run (new_session names app.py's hash)
                self.page_hash = message.navigation.page_script_hash or self.page_hash
            elif kind == "page_not_found":
                raise ClientError(f"the server has no page {self.page!r}")
            elif kind == "delta":
                self._apply(message)
            elif kind == "page_info_changed":  # st.query_params changed: the browser's URL follows
                self.query = message.page_info_changed.query_string
            elif kind == "script_finished":
                status = message.script_finished
                if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise ClientError("the script failed to compile")
                if status != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    return
                self._forget("")  # st.rerun(): a whole new run follows

    def _forget(self, fragment_id: str) -> None:
        """Before a run: drop what it redraws (everything, or the fragment's own elements)."""
        if not fragment_id:
            self.widgets, self.elements = {}, {}
            return
        self.widgets = {name: w for name, w in self.widgets.items() if w.fragment_id != fragment_id}
        self.elements = {path: e for path, e in self.elements.items() if e[2] != fragment_id}

    def _apply(self, message: ForwardMsg) -> None:
        delta = message.delta
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        body = getattr(element, kind)
        self.elements[tuple(message.metadata.delta_path)] = (kind, body, delta.fragment_id)
        if kind == "imgs":
            self._media.extend(image.url for image in body.imgs if image.url.startswith("/media/"))
        widget_id = getattr(body, "id", "")
        if widget_id.startswith("$$ID-"):
            key = widget_id.split("-", 2)[2]
            label = getattr(body, "label", "")
            name = label if key == "None" else key
            widget = Widget(widget_id, kind, label, delta.fragment_id, getattr(body, "disabled", False), body)
            self.widgets[name] = widget
            # the frontend takes a widget's value when it first draws it, and again when the script sets it
            if widget_id not in self._states or getattr(body, "set_value", False):
                state = initial_state(widget)
                if state is not None:
                    self._states[widget_id] = state

    # ------------------------------------------------------------------------------------------------ reading

    def text(self) -> str:
        """Every text on the page now (markdown, headings, alerts, metrics as ``label: value``), one per line."""
        lines = []
        for kind, body, _ in self.elements.values():
            if kind in TEXT_KINDS:
                lines.append(body.body)
            elif kind == "metric":
                lines.append(f"{body.label}: {body.body}")
        return "\n".join(lines)

    def metric(self, label: str) -> str:
        """The value of the metric with ``label`` (the Game's "Round", "You"); KeyError if none is shown."""
        for kind, body, _ in self.elements.values():
            if kind == "metric" and body.label == label:
                return body.body
        raise KeyError(label)
